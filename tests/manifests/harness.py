"""The manifests harness: render every role's manifests for its matrix, validate them.

A role that creates Kubernetes objects has ``roles/<role>/tasks/manifests.yml`` (it only sets
the fact ``<role>_manifests``) and ``tests/manifests/cases/<role>.yml`` (a list of
``{name, vars}``). :func:`render` runs ONE real ``ansible-playbook`` (``render.yml``) for any
number of cases: one inventory host per case, whose vars are the stub facts of the other roles
overridden by the case's vars, so each case renders through the role's own ``manifests.yml``
exactly as ``tasks/main.yml`` does. :func:`schema_errors` validates a manifest with
``kubernetes-validate`` (strict) and :func:`convention_errors` checks what the schema cannot:
the standard labels, namespaces and DNS-1123 names (docs/DEVELOPING.md).
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.harness.playbook import run_playbook

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# The oldest and the newest Kubernetes minor this collection supports: the ONE place they are
# defined (tests/manifests/README.md says when to move them).
KUBERNETES_VERSIONS = ("1.32", "1.37")

# kubernetes-validate reads and parses the 1.8 MB definitions file of a version on every call;
# its schema loader is a pure function of (file, version), so remember what it read.
if hasattr(kubernetes_validate.utils, "schema_contents"):
    kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)

ROLES_DIR = ROOT / "roles"
CASES_DIR = HERE / "cases"
RENDER_PLAYBOOK = HERE / "render.yml"
COLLECTION_PREFIX = "mlops.mlflow_k8s."
FIXTURES_DIR = HERE / "fixtures"

STANDARD_LABELS = {
    "app.kubernetes.io/part-of": "mlflow-k8s",
    "app.kubernetes.io/managed-by": "ansible",
    "app.kubernetes.io/name": None,  # the component: any valid, non-empty label value
    "app.kubernetes.io/instance": None,  # the release name
}

# Kinds without a namespace. Everything else must name one (kubernetes-validate's schemas do
# not tell the scope; `kubectl api-resources --namespaced=false` on 1.37 does).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CSIDriver",
        "CSINode",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)
# Kinds whose name must be a DNS-1123 label (63 characters, no dots), not just a subdomain:
# Namespaces and Services by API validation; Jobs, StatefulSets and CronJobs because their
# names end up in label values and pod host names.
LABEL_NAME_KINDS = frozenset({"Namespace", "Service", "Job", "StatefulSet", "CronJob"})
POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# Stub facts of the roles a role runs after (docs/DEVELOPING.md, "Facts handed from role to
# role"). The case's `cluster_provider` picks the cluster set (microk8s when not given); the
# case's vars override any of them. A role never gets stubs of its own prefix, so its own
# defaults and logic are what is rendered.
CLUSTER_STUBS: dict[str, dict[str, Any]] = {
    "microk8s": {
        "cluster_provider": "microk8s",
        "cluster_kubeconfig": "/home/ansible/.kube/mlflow-k8s.microk8s.yaml",
        "cluster_context": "microk8s",
        "cluster_api_address": "https://10.20.0.11:16443",
        "cluster_node_names": ["mlops-node-1"],
        "cluster_node_addresses": ["10.20.0.11"],
        "cluster_kubelet_root_dir": "/var/snap/microk8s/common/var/lib/kubelet",
        "cluster_ingress_class": "public",
    },
    "minikube": {
        "cluster_provider": "minikube",
        "cluster_kubeconfig": "/home/ansible/.kube/mlflow-k8s.minikube.yaml",
        "cluster_context": "minikube",
        "cluster_api_address": "https://192.168.49.2:8443",
        "cluster_node_names": ["minikube"],
        "cluster_node_addresses": ["192.168.49.2"],
        "cluster_kubelet_root_dir": "/var/lib/kubelet",
        "cluster_ingress_class": "nginx",
    },
    "existing": {
        "cluster_provider": "existing",
        "cluster_kubeconfig": "/home/ansible/.kube/config",
        "cluster_context": "",
        "cluster_api_address": "https://k8s-api.example.internal:6443",
        "cluster_node_names": ["worker-1", "worker-2", "worker-3"],
        "cluster_node_addresses": ["10.30.0.21", "10.30.0.22", "10.30.0.23"],
        "cluster_kubelet_root_dir": "/var/lib/kubelet",
        "cluster_ingress_class": "",
    },
}
SHARED_STUBS: dict[str, Any] = {
    "storage_class_name": "mlflow-local",
    "storage_database_pvc": "mlflow-database-data",
    "storage_artifacts_pvc": "mlflow-artifacts",
    "storage_artifacts_access_modes": ["ReadWriteOnce"],
    "database_uri_secret_name": "mlflow-backend-store-uri",
    "database_uri_secret_key": "uri",
    "database_auth_uri_secret_name": "mlflow-auth-store-uri",
    "database_auth_uri_secret_key": "uri",
    "database_host": "mlflow-postgresql.mlflow.svc.cluster.local",
    "database_port": 5432,
    "database_connection_limit": 500,
    "mlflow_server_url": "http://10.20.0.11:30500",
    "mlflow_server_internal_url": "http://mlflow-server.mlflow.svc.cluster.local:5000",
}
STUB_FACT_NAMES = frozenset(CLUSTER_STUBS["microk8s"]) | frozenset(SHARED_STUBS)


class CasesError(ValueError):
    """A cases file that is not a list of {name, vars}."""


@dataclass(frozen=True)
class Case:
    role: str
    name: str
    vars: Mapping[str, Any]
    source: Path

    @property
    def id(self) -> str:
        return f"{self.role}/{self.name}"


@dataclass
class Rendered:
    case: Case
    manifests: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def load_cases(cases_dir: Path = CASES_DIR) -> list[Case]:
    """Every case of every ``<role>.yml`` in ``cases_dir``, in file order."""
    cases: list[Case] = []
    for path in sorted(cases_dir.glob("*.yml")):
        role = path.stem
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, list) or not data:
            raise CasesError(f"{path}: expected a non-empty list of {{name, vars}}")
        seen: set[str] = set()
        for index, item in enumerate(data):
            where = f"{path}: case #{index + 1}"
            if not isinstance(item, dict) or set(item) - {"name", "vars"} or "name" not in item:
                raise CasesError(f"{where}: expected a mapping with `name` and optional `vars`, got {item!r}")
            name = item["name"]
            if not isinstance(name, str) or not DNS1123_LABEL.match(name):
                raise CasesError(f"{where}: name {name!r} must be lower-case letters, digits and '-'")
            if name in seen:
                raise CasesError(f"{where}: name {name!r} is used twice")
            seen.add(name)
            case_vars = item.get("vars") or {}
            if not isinstance(case_vars, dict):
                raise CasesError(f"{where} ({name}): vars must be a mapping")
            cases.append(Case(role=role, name=name, vars=case_vars, source=path))
    return cases


def stub_facts(role: str, case_vars: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of the other roles a case renders with (the case's vars still win)."""
    provider = case_vars.get("cluster_provider", "microk8s")
    if provider not in CLUSTER_STUBS:
        raise CasesError(f"cluster_provider {provider!r} is not one of {sorted(CLUSTER_STUBS)}")
    facts = {**CLUSTER_STUBS[provider], **SHARED_STUBS}
    return {k: v for k, v in facts.items() if not k.startswith(role + "_")}


def render(
    cases: Iterable[Case],
    *,
    roles_path: Path | None = None,
    collection: bool = True,
    forks: int = 8,
) -> dict[str, Rendered]:
    """Render ``cases`` in one ansible-playbook run; returns {case.id: Rendered}.

    ``collection``: include ``mlops.mlflow_k8s.<role>`` (the real roles) or, when False, the
    bare role name found on ``roles_path`` (the harness's fixture roles).
    """
    cases = list(cases)
    results = {case.id: Rendered(case) for case in cases}
    if not cases:
        return results
    hosts: dict[str, dict[str, Any]] = {}
    host_case: dict[str, Case] = {}
    for index, case in enumerate(cases):
        host = f"case-{index:03d}"
        host_case[host] = case
        hosts[host] = {
            **stub_facts(case.role, case.vars),
            **case.vars,
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "manifests_harness_role": (COLLECTION_PREFIX if collection else "") + case.role,
            "manifests_harness_fact": f"{case.role}_manifests",
            "manifests_harness_case": case.id,
        }
    env = {"ANSIBLE_FORKS": str(forks), "ANSIBLE_DEPRECATION_WARNINGS": "0"}
    if roles_path is not None:
        env["ANSIBLE_ROLES_PATH"] = str(roles_path)
    result = run_playbook(RENDER_PLAYBOOK, inventory={"all": {"hosts": hosts}}, env=env, timeout=900)
    if not result.stats:
        message = f"ansible-playbook did not run the render play:\n{result.summary()}"
        for rendered in results.values():
            rendered.error = message
        return results
    for host, case in host_case.items():
        rendered = results[case.id]
        failed = result.failed_tasks(host)
        if failed:
            task = failed[0]
            rendered.error = f"task {task.name!r} failed: {task.msg or task.result}"
            continue
        try:
            report = result.task("Report the rendered manifests", host).result
        except KeyError:
            rendered.error = f"the render play did not reach its report for this case:\n{result.summary()}"
            continue
        manifests = report.get("manifests_harness_rendered")
        if isinstance(manifests, str) and "VARIABLE IS NOT DEFINED" in manifests:
            rendered.error = f"tasks/manifests.yml did not set the fact {case.role}_manifests"
        elif not isinstance(manifests, list) or not all(isinstance(m, dict) for m in manifests):
            rendered.error = f"{case.role}_manifests is not a list of mappings: {manifests!r:.500}"
        else:
            rendered.manifests = manifests
    return results


def describe(manifest: Mapping[str, Any]) -> str:
    metadata = manifest.get("metadata") or {}
    return f"{manifest.get('kind', '?')}/{metadata.get('name', '?')}"


def schema_errors(manifest: Mapping[str, Any], version: str) -> list[str]:
    """Strict OpenAPI validation of one manifest for one Kubernetes minor ([] when valid)."""
    try:
        kubernetes_validate.validate(dict(manifest), version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(p) for p in error.path) or "(top level)"
        return [f"{describe(manifest)} against Kubernetes {version}: {path}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [
            f"{describe(manifest)}: no schema for {error.kind} {error.api_version} in Kubernetes {version} "
            "(an API removed or not yet served in that version, or a custom resource)"
        ]
    except (KeyError, TypeError) as error:
        return [f"{describe(manifest)}: not a Kubernetes object (apiVersion and kind are required): {error}"]
    return []


def _label_errors(where: str, labels: Any) -> list[str]:
    if not isinstance(labels, dict):
        return [f"{where}: no labels (the standard labels are required)"]
    errors = []
    for key, expected in STANDARD_LABELS.items():
        value = labels.get(key)
        if not value:
            errors.append(f"{where}: label {key} is missing")
        elif expected is not None and value != expected:
            errors.append(f"{where}: label {key} is {value!r}, must be {expected!r}")
    for key, value in labels.items():
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            errors.append(f"{where}: label {key}={value!r} is not a valid label value")
    return errors


def _templating_leftovers(node: Any, path: str = "") -> list[str]:
    if isinstance(node, str):
        return [path] if ("{{" in node or "{%" in node) else []
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _templating_leftovers(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _templating_leftovers(v, f"{path}[{i}]")]
    return []


def convention_errors(manifest: Mapping[str, Any]) -> list[str]:
    """What the schema cannot check: labels, namespace, DNS-1123 names, unrendered Jinja."""
    what = describe(manifest)
    kind = manifest.get("kind", "")
    metadata = manifest.get("metadata") or {}
    errors: list[str] = []
    name = metadata.get("name")
    if kind in LABEL_NAME_KINDS:
        if not isinstance(name, str) or len(name) > 63 or not DNS1123_LABEL.match(name):
            errors.append(f"{what}: name {name!r} is not a DNS-1123 label (a-z, 0-9, '-', at most 63)")
    elif not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        errors.append(f"{what}: name {name!r} is not a DNS-1123 subdomain")
    namespace = metadata.get("namespace")
    if kind in CLUSTER_SCOPED_KINDS:
        if namespace is not None:
            errors.append(f"{what}: {kind} is cluster-scoped but has namespace {namespace!r}")
    elif not isinstance(namespace, str) or len(namespace) > 63 or not DNS1123_LABEL.match(namespace):
        errors.append(f"{what}: namespace {namespace!r} missing or not a DNS-1123 label")
    errors += _label_errors(what, metadata.get("labels"))
    if kind in POD_TEMPLATE_PATHS:
        template: Any = manifest
        for key in POD_TEMPLATE_PATHS[kind]:
            template = template.get(key) if isinstance(template, dict) else None
        if isinstance(template, dict):
            errors += _label_errors(f"{what} pod template", (template.get("metadata") or {}).get("labels"))
            spec = template.get("spec") or {}
            for group in ("initContainers", "containers"):
                for container in spec.get(group) or []:
                    cname = container.get("name") if isinstance(container, dict) else None
                    if not isinstance(cname, str) or len(cname) > 63 or not DNS1123_LABEL.match(cname):
                        errors.append(f"{what}: container name {cname!r} is not a DNS-1123 label")
    errors += [f"{what}: unrendered Jinja at {path}" for path in _templating_leftovers(dict(manifest))]
    return errors


@functools.cache
def argument_specs(role_dir: Path) -> dict[str, Any]:
    """The options of every entry point in ``meta/argument_specs.yml`` ({} without one)."""
    path = role_dir / "meta" / "argument_specs.yml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    options: dict[str, Any] = {}
    for entry in (data.get("argument_specs") or {}).values():
        options.update((entry or {}).get("options") or {})
    return options


def _without_defaults(spec: Mapping[str, Any]) -> dict[str, Any]:
    # Defaults in argument specs are documentation (Ansible takes them from defaults/main.yml)
    # and often Jinja; only the case's own values are validated.
    out = {}
    for name, given in spec.items():
        option = {k: v for k, v in dict(given).items() if k not in ("default", "description", "version_added")}
        if isinstance(option.get("options"), dict):
            option["options"] = _without_defaults(option["options"])
        out[name] = option
    return out


def case_var_errors(case: Case, roles_dir: Path) -> list[str]:
    """Case vars that are no role's input nor a stub fact, and values the role's spec rejects."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    role_names = sorted((p.name for p in roles_dir.iterdir() if p.is_dir()), key=len, reverse=True)
    specs = {name: argument_specs(roles_dir / name) for name in role_names}
    errors = []
    own: dict[str, Any] = {}
    for key, value in case.vars.items():
        if key.startswith(case.role + "_"):
            own[key] = value
            continue
        if key in STUB_FACT_NAMES or key.startswith("mlflow_k8s_"):
            continue
        owner = next((r for r in role_names if key.startswith(r + "_")), None)
        if owner is None or key not in specs[owner]:
            errors.append(f"{case.id}: var {key!r} is neither an input of a role nor a fact of docs/DEVELOPING.md")
    spec = specs.get(case.role) or {}
    if spec:
        result = ArgumentSpecValidator(_without_defaults(spec)).validate(own)
        errors += [f"{case.id}: {message}" for message in result.error_messages]
    return errors


API_VERSION_LINE = re.compile(r"^apiVersion:", re.MULTILINE)
KIND_LINE = re.compile(r"^kind:", re.MULTILINE)


def _is_manifest_template(path: Path) -> bool:
    text = path.read_text(encoding="utf-8", errors="replace")
    return bool(API_VERSION_LINE.search(text) and KIND_LINE.search(text))


def roles_with_manifests(roles_dir: Path = ROLES_DIR) -> set[str]:
    """Roles that create Kubernetes objects: a tasks/manifests.yml or a manifest template."""
    roles = set()
    for role_dir in sorted(p for p in roles_dir.iterdir() if p.is_dir()):
        templates = list((role_dir / "templates").glob("**/*.j2"))
        if (role_dir / "tasks" / "manifests.yml").exists() or any(_is_manifest_template(t) for t in templates):
            roles.add(role_dir.name)
    return roles
