"""Every role's manifests, rendered for its matrix and validated for the Kubernetes we support.

The first half runs the real roles' cases (tests/manifests/cases/<role>.yml); the second half
proves the harness itself on the fixture role under tests/manifests/fixtures/, including a case
that must fail the schema.
"""

from __future__ import annotations

import copy

import pytest

from tests.manifests import harness

try:
    CASES = harness.load_cases()
    CASES_ERROR = None
except harness.CasesError as error:
    CASES, CASES_ERROR = [], str(error)

NO_CASES = (
    "no tests/manifests/cases/<role>.yml exists yet, so no real role is rendered "
    "(test_every_manifest_role_has_cases names the roles that need one)"
)


def _case_params(cases, *, with_versions: bool):
    if not cases:
        mark = pytest.mark.skip(reason=CASES_ERROR or NO_CASES)
        return (
            [pytest.param(None, None, marks=mark, id="no-cases")]
            if with_versions
            else [pytest.param(None, marks=mark, id="no-cases")]
        )
    if with_versions:
        return [
            pytest.param(case, version, id=f"{case.id}@{version}")
            for case in cases
            for version in harness.KUBERNETES_VERSIONS
        ]
    return [pytest.param(case, id=case.id) for case in cases]


def _manifests_of(rendered, case):
    result = rendered[case.id]
    assert result.error is None, f"{case.id} ({case.source.name}): render failed: {result.error}"
    assert result.manifests, f"{case.id}: {case.role}_manifests is empty: a case must render at least one manifest"
    return result.manifests


# ---------------------------------------------------------------------------------------------
# The real roles


def test_cases_files_are_well_formed():
    assert CASES_ERROR is None, CASES_ERROR


def test_every_manifest_role_has_cases():
    """No role escapes: a role with manifests has cases, a cases file has a rendering role."""
    needing = harness.roles_with_manifests()
    with_cases = {path.stem for path in harness.CASES_DIR.glob("*.yml")}
    missing = sorted(needing - with_cases)
    assert not missing, f"roles with manifest templates or tasks/manifests.yml but no tests/manifests/cases: {missing}"
    orphans = sorted(r for r in with_cases if not (harness.ROLES_DIR / r / "tasks" / "manifests.yml").exists())
    assert not orphans, f"cases files whose role has no tasks/manifests.yml: {orphans}"


@pytest.mark.parametrize("case", _case_params(CASES, with_versions=False))
def test_case_vars_are_role_inputs(case):
    errors = harness.case_var_errors(case, harness.ROLES_DIR)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("case", _case_params(CASES, with_versions=False))
def test_case_follows_conventions(case, rendered):
    errors = [e for m in _manifests_of(rendered, case) for e in harness.convention_errors(m)]
    assert not errors, f"{case.id}:\n" + "\n".join(errors)


@pytest.mark.parametrize(("case", "version"), _case_params(CASES, with_versions=True))
def test_case_validates(case, version, rendered):
    errors = [e for m in _manifests_of(rendered, case) for e in harness.schema_errors(m, version)]
    assert not errors, f"{case.id}:\n" + "\n".join(errors)


# ---------------------------------------------------------------------------------------------
# The harness itself, on tests/manifests/fixtures/

GOOD = ("harness_fixture/defaults", "harness_fixture/nodeport-minikube")
BROKEN = "harness_fixture/broken-unknown-field"


@pytest.mark.parametrize("version", harness.KUBERNETES_VERSIONS)
@pytest.mark.parametrize("case_id", GOOD)
def test_harness_good_fixture_cases_validate(fixture_rendered, case_id, version):
    result = fixture_rendered[case_id]
    assert result.error is None, result.error
    assert [harness.describe(m) for m in result.manifests] == ["Deployment/harness-fixture", "Service/harness-fixture"]
    for manifest in result.manifests:
        assert harness.schema_errors(manifest, version) == []
        assert harness.convention_errors(manifest) == []


@pytest.mark.parametrize("version", harness.KUBERNETES_VERSIONS)
def test_harness_fails_a_wrong_field(fixture_rendered, version):
    manifests = fixture_rendered[BROKEN].manifests
    errors = [e for m in manifests for e in harness.schema_errors(m, version)]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"Deployment/harness-fixture against Kubernetes {version}: ")
    assert "spec.template.spec.containers.0" in errors[0]
    assert "imagePullPolicyy" in errors[0]


def test_harness_case_vars_and_stub_facts_reach_the_role(fixture_rendered):
    deployment, service = fixture_rendered["harness_fixture/nodeport-minikube"].manifests
    assert deployment["metadata"]["namespace"] == "mlops"  # mlflow_k8s_namespace from the case
    assert deployment["spec"]["replicas"] == 2  # an int, as the API wants it
    assert service["spec"]["type"] == "NodePort"
    defaults = fixture_rendered["harness_fixture/defaults"].manifests
    assert defaults[0]["metadata"]["namespace"] == "mlflow"  # the role default


def test_harness_stub_facts_follow_the_provider_and_spare_the_role():
    minikube = harness.stub_facts("mlflow_server", {"cluster_provider": "minikube"})
    assert minikube["cluster_context"] == "minikube"
    assert "mlflow_server_url" not in minikube  # the role's own outputs are never stubbed
    assert harness.stub_facts("storage", {})["cluster_provider"] == "microk8s"
    assert "storage_class_name" not in harness.stub_facts("storage", {})
    with pytest.raises(harness.CasesError, match="cluster_provider"):
        harness.stub_facts("storage", {"cluster_provider": "kind"})


def test_harness_reports_a_failing_render_and_keeps_the_others():
    source = harness.FIXTURES_DIR / "cases" / "harness_fixture.yml"
    cases = [
        harness.Case("harness_fixture", "bad-render", {"harness_fixture_container_extra": "not-a-dict"}, source),
        harness.Case("harness_fixture", "fine", {}, source),
        harness.Case("no_such_role", "missing", {}, source),
    ]
    results = harness.render(cases, roles_path=harness.FIXTURES_DIR / "roles", collection=False)
    assert "combine" in results["harness_fixture/bad-render"].error
    assert results["harness_fixture/bad-render"].manifests == []
    assert results["harness_fixture/fine"].error is None
    assert len(results["harness_fixture/fine"].manifests) == 2
    assert "no_such_role" in results["no_such_role/missing"].error


def test_harness_flags_unknown_and_invalid_case_vars():
    roles = harness.FIXTURES_DIR / "roles"
    source = harness.FIXTURES_DIR / "cases" / "harness_fixture.yml"
    good = harness.Case(
        "harness_fixture", "ok", {"harness_fixture_replicas": 3, "cluster_provider": "existing"}, source
    )
    assert harness.case_var_errors(good, roles) == []
    typo = harness.Case("harness_fixture", "typo", {"harness_fixture_replicaz": 3, "foo": 1}, source)
    errors = harness.case_var_errors(typo, roles)
    assert any("harness_fixture_replicaz" in e for e in errors), errors
    assert any("'foo'" in e for e in errors), errors
    bad_choice = harness.Case("harness_fixture", "choice", {"harness_fixture_service_type": "LoadBalancer"}, source)
    assert any("harness_fixture_service_type" in e for e in harness.case_var_errors(bad_choice, roles))


def test_harness_load_cases_rejects_malformed_files(tmp_path):
    (tmp_path / "storage.yml").write_text("- name: Bad_Name\n  vars: {}\n")
    with pytest.raises(harness.CasesError, match="Bad_Name"):
        harness.load_cases(tmp_path)
    (tmp_path / "storage.yml").write_text("- name: a\n- name: a\n")
    with pytest.raises(harness.CasesError, match="used twice"):
        harness.load_cases(tmp_path)
    (tmp_path / "storage.yml").write_text("- name: a\n  varz: {}\n")
    with pytest.raises(harness.CasesError, match="expected a mapping"):
        harness.load_cases(tmp_path)
    (tmp_path / "storage.yml").write_text("- name: a\n  vars:\n    storage_x: 1\n")
    assert [c.id for c in harness.load_cases(tmp_path)] == ["storage/a"]


def _good_deployment(fixture_rendered):
    return copy.deepcopy(fixture_rendered["harness_fixture/defaults"].manifests[0])


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (
            lambda m: m["metadata"]["labels"].pop("app.kubernetes.io/part-of"),
            "label app.kubernetes.io/part-of is missing",
        ),
        (lambda m: m["metadata"]["labels"].update({"app.kubernetes.io/managed-by": "helm"}), "must be 'ansible'"),
        (lambda m: m["spec"]["template"]["metadata"]["labels"].pop("app.kubernetes.io/instance"), "pod template"),
        (lambda m: m["metadata"].pop("namespace"), "namespace None missing"),
        (lambda m: m["metadata"].update({"name": "Harness_Fixture"}), "not a DNS-1123 subdomain"),
        (lambda m: m["metadata"]["labels"].update({"x": "-bad-"}), "not a valid label value"),
        (lambda m: m["spec"]["template"]["spec"]["containers"][0].update({"name": "Main"}), "container name"),
        (lambda m: m["spec"]["template"]["spec"]["containers"][0].update({"image": "{{ img }}"}), "unrendered Jinja"),
    ],
    ids=[
        "no-part-of",
        "wrong-managed-by",
        "pod-labels",
        "no-namespace",
        "bad-name",
        "label-value",
        "container",
        "jinja",
    ],
)
def test_harness_convention_checks_fail(fixture_rendered, breakage, expected):
    manifest = _good_deployment(fixture_rendered)
    breakage(manifest)
    errors = harness.convention_errors(manifest)
    assert any(expected in e for e in errors), errors


def test_harness_convention_checks_scope():
    labels = {
        "app.kubernetes.io/part-of": "mlflow-k8s",
        "app.kubernetes.io/managed-by": "ansible",
        "app.kubernetes.io/name": "postgresql",
        "app.kubernetes.io/instance": "mlflow",
    }
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "mlflow-db", "labels": labels}}
    assert harness.convention_errors(pv) == []
    pv["metadata"]["namespace"] = "mlflow"
    assert any("cluster-scoped" in e for e in harness.convention_errors(pv))
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a.b", "namespace": "mlflow", "labels": labels}}
    assert any("DNS-1123 label" in e for e in harness.convention_errors(svc))


def test_harness_schema_names_removed_apis():
    manifest = {
        "apiVersion": "policy/v1beta1",
        "kind": "PodSecurityPolicy",
        "metadata": {"name": "x"},
        "spec": {},
    }
    for version in harness.KUBERNETES_VERSIONS:
        errors = harness.schema_errors(manifest, version)
        assert errors and "no schema for PodSecurityPolicy policy/v1beta1" in errors[0]


def test_harness_finds_roles_with_manifests(tmp_path):
    (tmp_path / "plain" / "tasks").mkdir(parents=True)
    (tmp_path / "plain" / "templates").mkdir()
    (tmp_path / "plain" / "templates" / "config.ini.j2").write_text("[a]\nkind: not-a-manifest-line\n")
    (tmp_path / "templated" / "templates").mkdir(parents=True)
    (tmp_path / "templated" / "templates" / "pvc.yaml.j2").write_text("apiVersion: v1\nkind: PersistentVolumeClaim\n")
    (tmp_path / "rendering" / "tasks").mkdir(parents=True)
    (tmp_path / "rendering" / "tasks" / "manifests.yml").write_text("---\n")
    assert harness.roles_with_manifests(tmp_path) == {"templated", "rendering"}
