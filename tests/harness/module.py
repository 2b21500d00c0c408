"""Run a module's main() in-process, with its arguments patched in as Ansible passes them."""

from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class Exited(Exception):
    """What exit_json or fail_json would have printed; raised instead of leaving the process."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


def _exit(self, **kwargs):  # noqa: ARG001 - stands in for AnsibleModule.exit_json
    kwargs.setdefault("changed", False)
    raise Exited(kwargs)


def _fail(self, msg, **kwargs):  # noqa: ARG001 - stands in for AnsibleModule.fail_json
    kwargs.update(failed=True, msg=msg)
    raise Exited(kwargs)


def run_module(module, args, check_mode=False):
    """main() of `module` with `args`; returns the result dict (``failed`` set on fail_json)."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    with (
        patch_module_args(args),
        mock.patch.object(basic.AnsibleModule, "exit_json", _exit),
        mock.patch.object(basic.AnsibleModule, "fail_json", _fail),
        pytest.raises(Exited) as caught,
    ):
        module.main()
    return caught.value.result
