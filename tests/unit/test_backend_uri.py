"""The backend-store URI builder, with SQLAlchemy's own parser as the oracle."""

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from ansible_collections.mlops.mlflow_k8s.plugins.filter.backend_store_uri import FilterModule
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.backend_uri import (
    BackendUriError,
    build_backend_store_uri,
)

NASTY = "@:/?#%+ '\"\\&=;[]"
# Passwords and names as users type them: anything printable, weighted towards the
# characters that break hand-written URIs, plus non-ASCII letters and symbols.
text = st.text(
    alphabet=st.one_of(st.sampled_from(NASTY), st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))),
    min_size=1,
    max_size=40,
)
hosts = st.sampled_from(["db", "mlflow-postgresql.mlflow.svc", "10.1.2.3", "::1", "fd00::12", "127.0.0.1"])


@settings(max_examples=300, deadline=None)
@given(
    case=st.fixed_dictionaries(
        {
            "engine": st.sampled_from(["postgresql", "mysql"]),
            "host": hosts,
            "port": st.integers(min_value=1, max_value=65535),
            "username": text,
            "password": text,
            "database": text,
        }
    )
)
def test_round_trips_through_make_url(case):
    engine = case.pop("engine")
    url = make_url(build_backend_store_uri(engine, **case))
    assert url.drivername == {"postgresql": "postgresql+psycopg2", "mysql": "mysql+pymysql"}[engine]
    assert (url.username, url.password, url.host, url.port, url.database) == (
        case["username"],
        case["password"],
        case["host"],
        case["port"],
        case["database"],
    )
    assert not url.query


@pytest.mark.parametrize("password", ["@:/?#%+ '\"", "p@ss:w/rd?#", "%41%", "+ +", "пароль", "密码🔑", "a\\b"])
def test_nasty_passwords_are_escaped(password):
    uri = build_backend_store_uri("mysql", host="db", username="mlflow", password=password, database="mlflow")
    userinfo = uri.split("://", 1)[1].rsplit("@", 1)[0]
    # Nothing but the one separator and percent escapes survive in the user-info part.
    assert userinfo.count(":") == 1
    assert not set(userinfo) & set("@/?# '\"+")
    assert make_url(uri).password == password


def test_exact_form():
    assert (
        build_backend_store_uri(
            "postgresql", host="db.mlflow.svc", username="mlflow", password="p@ss w", database="mlflow"
        )
        == "postgresql+psycopg2://mlflow:p%40ss%20w@db.mlflow.svc:5432/mlflow"
    )
    assert (
        build_backend_store_uri("mysql", host="::1", username="u", password="", database="m", port="3307")
        == "mysql+pymysql://u@[::1]:3307/m"
    )


def test_driver_and_query():
    uri = build_backend_store_uri(
        "postgresql",
        host="db",
        username="u",
        password="p",
        database="d",
        driver="psycopg",
        query={"sslmode": "require", "application_name": "mlflow server"},
    )
    url = make_url(uri)
    assert url.drivername == "postgresql+psycopg"
    assert dict(url.query) == {"sslmode": "require", "application_name": "mlflow server"}


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"engine": "sqlite"}, "engine"),
        ({"host": ""}, "host"),
        ({"host": "db/x"}, "host"),
        ({"host": "user@db"}, "host"),
        ({"username": ""}, "username"),
        ({"username": None}, "username"),
        ({"database": ""}, "database"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"port": "abc"}, "port"),
        ({"port": True}, "port"),
        ({"driver": "psycopg2;drop"}, "driver"),
        ({"query": "sslmode=require"}, "query"),
        ({"password": ["x"]}, "password"),
    ],
)
def test_bad_input_names_the_option(kwargs, option):
    kwargs = dict(kwargs)
    engine = kwargs.pop("engine", "postgresql")
    args = {"host": "db", "username": "u", "password": "p", "database": "d", **kwargs}
    with pytest.raises(BackendUriError, match=option):
        build_backend_store_uri(engine, **args)


def test_filter_plugin_wraps_errors():
    backend_store_uri = FilterModule().filters()["backend_store_uri"]
    assert backend_store_uri("mysql", host="db", username="u", password="p:w", database="d") == (
        "mysql+pymysql://u:p%3Aw@db:3306/d"
    )
    with pytest.raises(AnsibleFilterError, match="engine"):
        backend_store_uri("oracle", host="db", username="u", password="p", database="d")
