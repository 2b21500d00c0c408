# -*- coding: utf-8 -*-
# Copyright: (c) 2026, MLOps platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``mlops.mlflow_k8s.backend_store_uri``: the SQLAlchemy URI of MLflow's backend store."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.backend_uri import (
    BackendUriError,
    build_backend_store_uri,
)


def backend_store_uri(
    engine, *, host=None, username=None, password=None, database=None, port=None, driver=None, query=None
):
    """Jinja entry point: ``engine | mlops.mlflow_k8s.backend_store_uri(host=..., ...)``."""
    try:
        return build_backend_store_uri(
            engine,
            host=host,
            username=username,
            password=password,
            database=database,
            port=port,
            driver=driver,
            query=query,
        )
    except BackendUriError as exc:
        raise AnsibleFilterError("backend_store_uri: %s" % exc) from exc


class FilterModule(object):
    """Filters of mlops.mlflow_k8s."""

    def filters(self):
        return {"backend_store_uri": backend_store_uri}
