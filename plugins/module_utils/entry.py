# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The end of every module's main(): required libraries, then the call, then one clean exit.

A module builds its AnsibleModule (argument spec, mutually exclusive options) and hands the
rest to ``finish``: a missing library is named with missing_required_lib, a ProjectJobError
becomes fail_json naming its option, anything else fails with its type and message (the
traceback only under -vvv), and a result with ``failed`` (a stuck pod, a wait that ran out)
fails with everything it says.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ProjectJobError


def finish(module, call, requires=()):
    """Run ``call()`` (it returns the result dict) and exit the module with it.

    ``requires``: (library name, importable?, import error) of each library the module needs.
    """
    for name, present, error in requires:
        if not present:
            module.fail_json(msg=missing_required_lib(name), exception=str(error))
    try:
        result = call()
    except ProjectJobError as exc:
        module.fail_json(msg=exc.text(), option=exc.option)
    except Exception as exc:  # never a bare traceback: say what broke, keep the trace for -vvv
        module.fail_json(
            msg="unexpected error: {0}: {1}".format(type(exc).__name__, exc), exception=traceback.format_exc()
        )
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)
