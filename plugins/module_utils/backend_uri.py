# -*- coding: utf-8 -*-
# Copyright: (c) 2026, MLOps platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the SQLAlchemy URI of MLflow's backend store.

Importable without Ansible running: the filter plugin
``mlops.mlflow_k8s.backend_store_uri`` is a thin wrapper around ``build_backend_store_uri``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from urllib.parse import quote, urlencode

# The DB-API driver each engine uses in the MLflow server image. A bare ``postgresql://``
# selects psycopg 3 on SQLAlchemy 2.1, so the driver is always written out.
DEFAULT_DRIVERS = {
    "postgresql": "psycopg2",
    "mysql": "pymysql",
}
DEFAULT_PORTS = {
    "postgresql": 5432,
    "mysql": 3306,
}


class BackendUriError(ValueError):
    """An input that cannot make a valid backend-store URI (message names the option)."""


def _text(value, option, allow_empty=False):
    if value is None:
        if allow_empty:
            return ""
        raise BackendUriError("%s is required to build the backend store URI" % option)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BackendUriError("%s must be a string, got %s" % (option, type(value).__name__))
        value = str(value)
    if not value and not allow_empty:
        raise BackendUriError("%s must not be empty" % option)
    return value


def _port(value, engine):
    if value is None or value == "":
        return DEFAULT_PORTS[engine]
    if isinstance(value, bool):
        raise BackendUriError("port must be an integer between 1 and 65535, got %r" % (value,))
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise BackendUriError("port must be an integer between 1 and 65535, got %r" % (value,)) from None
    if not 1 <= port <= 65535:
        raise BackendUriError("port must be an integer between 1 and 65535, got %r" % (value,))
    return port


def build_backend_store_uri(engine, *, host, username, password, database, port=None, driver=None, query=None):
    """Return ``<engine>+<driver>://<user>:<password>@<host>:<port>/<database>[?query]``.

    ``username``, ``password`` and ``database`` are percent-encoded with nothing left safe,
    so every character (``@:/?#%+`` space, quotes, unicode) survives SQLAlchemy's
    ``make_url``. ``host`` may be a name, an IPv4 address or an IPv6 address (bracketed here).
    """
    engine = _text(engine, "engine")
    if engine not in DEFAULT_DRIVERS:
        raise BackendUriError("engine must be one of %s, got %r" % (", ".join(sorted(DEFAULT_DRIVERS)), engine))
    driver = _text(driver, "driver", allow_empty=True) or DEFAULT_DRIVERS[engine]
    if not driver.replace("_", "").isalnum():
        raise BackendUriError("driver must be a DB-API driver name such as psycopg2, got %r" % driver)
    host = _text(host, "host")
    if any(c in host for c in "/?#@ ") or host.startswith("[") != host.endswith("]"):
        raise BackendUriError("host must be a host name or an IP address, got %r" % host)
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    username = _text(username, "username")
    password = _text(password, "password", allow_empty=True)
    database = _text(database, "database")
    port = _port(port, engine)

    userinfo = quote(username, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    uri = "%s+%s://%s@%s:%d/%s" % (engine, driver, userinfo, host, port, quote(database, safe=""))
    if query:
        if not isinstance(query, dict):
            raise BackendUriError("query must be a mapping of URI query parameters")
        uri += "?" + urlencode(sorted((str(k), str(v)) for k, v in query.items()))
    return uri
