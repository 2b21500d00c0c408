# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Job: template loading (MLflow's kubernetes_config.json and template), merging, naming, labels.

MLflow (mlflow/projects/kubernetes.py) replaces ``metadata.name``, and the first container's
``name``, ``image`` and ``command``, and appends MLFLOW_RUN_ID, MLFLOW_TRACKING_URI and
MLFLOW_EXPERIMENT_ID to its env. We do the same on the same template, with names that are
always valid DNS-1123 labels and the command as an argument list.

The one place for the checks of what ends up in a Job: Kubernetes names (:func:`check_dns`),
labels (:func:`check_labels`, our ``mlops.mlflow-k8s/`` prefix is reserved), environment
variables and the names the module sets itself (:func:`check_env`), and Pod Security
(:func:`restricted_violations`, :func:`baseline_violations`, :func:`check_pod_security`).
Also the guard that keeps the controller's MLflow credentials on the operator's tracking
server (:class:`TrackingGuard`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import difflib
import hashlib
import json
import os
import re

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import TemplateError

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

LABEL_PREFIX = "mlops.mlflow-k8s"
LABEL_RUN_ID = LABEL_PREFIX + "/run-id"
LABEL_PROJECT = LABEL_PREFIX + "/project"
LABEL_IDENTITY = LABEL_PREFIX + "/identity"
ANNOTATION_IDENTITY = LABEL_PREFIX + "/identity"
ANNOTATION_TRACKING_URI = LABEL_PREFIX + "/tracking-uri"
ANNOTATION_EXPERIMENT_ID = LABEL_PREFIX + "/experiment-id"
ANNOTATION_PROJECT_NAME = LABEL_PREFIX + "/project-name"
STANDARD_LABELS = {
    "app.kubernetes.io/part-of": "mlflow-k8s",
    "app.kubernetes.io/managed-by": "ansible",
    "app.kubernetes.io/name": "mlflow-project",
}
MAX_NAME = 63
RUN_ENV_NAMES = ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")  # set by the module
TIMESTAMP_FORMAT = "%Y-%m-%d-%H-%M-%S-%f"  # MLflow's
DEFAULT_UID = 1000  # the built-in template's runAsUser and runAsGroup

DEFAULT_TEMPLATE = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "{replaced with MLflow Project name}"},
    "spec": {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 86400,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                # Pod Security "restricted" (restricted_violations() finds nothing): an image that runs as
                # root runs as uid/gid 1000 instead; the snapshot's emptyDir is writable by any uid.
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": DEFAULT_UID,
                    "runAsGroup": DEFAULT_UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "{replaced with MLflow Project name}",
                        "image": "{replaced with URI of Docker image created during Project execution}",
                        "command": ["{replaced with MLflow Project entry point command}"],
                        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    }
                ],
            }
        },
    },
}

_DNS_BAD = re.compile(r"[^a-z0-9-]+")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9._-]+")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def short_hash(text, length=6):
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:length]


def check_dns(option, value, subdomain=False):
    """Fail naming ``option`` unless ``value`` is a DNS-1123 label (or, with ``subdomain``, subdomain)."""
    limit = 253 if subdomain else MAX_NAME
    pattern = _DNS_SUBDOMAIN if subdomain else _DNS_LABEL
    if not isinstance(value, str) or len(value) > limit or not pattern.match(value):
        raise TemplateError(
            option,
            "{0!r} is not a valid Kubernetes name (lower-case letters, digits and '-', at most {1})".format(
                value, limit
            ),
        )


def dns_label(name, suffix="", fallback="mlflow-project"):
    """A DNS-1123 label from ``name`` (+ ``-suffix``): lower case, <= 63, a short hash of ``name`` when cut."""
    base = _DNS_BAD.sub("-", str(name or "").lower()).strip("-") or fallback
    tail = "-" + suffix if suffix else ""
    if len(base) + len(tail) <= MAX_NAME:
        return base + tail
    digest = "-" + short_hash(name)
    room = MAX_NAME - len(tail) - len(digest)
    if room < 1:
        raise TemplateError("run_name", "the name suffix {0!r} leaves no room for a name".format(suffix))
    return base[:room].rstrip("-") + digest + tail


def job_name(project_name, when):
    """``<project>-<timestamp>`` as MLflow names it, always a valid DNS-1123 label."""
    return dns_label(project_name, when.strftime(TIMESTAMP_FORMAT))


def label_value(text):
    """A valid label value (<= 63, alphanumeric at both ends)."""
    value = _LABEL_VALUE_BAD.sub("-", str(text))
    if len(value) > MAX_NAME:
        value = value[: MAX_NAME - 7] + "-" + short_hash(text)
    return value.strip("-_.")


BACKEND_KEYS = ("kube-context", "repository-uri", "kube-job-template-path")
BACKEND_CONFIG_MAX = 1024 * 1024  # a kubernetes_config.json is a few lines; anything this big is another file


def load_backend_config(path, base_dir=None):
    """MLflow's kubernetes_config.json: ``kube-context``, ``repository-uri``, ``kube-job-template-path``.

    A relative ``kube-job-template-path`` is found as MLflow finds it, against the working
    directory (``base_dir`` when given), else beside the config file.

    Errors name the file, the place and the problem, never its content (issue #27): whatever
    file the option names (a credentials file, say), nothing of it reaches the task's output.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(BACKEND_CONFIG_MAX + 1)
    except (OSError, IOError) as exc:
        raise TemplateError("backend_config", "cannot read {0}: {1}".format(path, exc.strerror or "error")) from None
    except UnicodeDecodeError:
        raise TemplateError("backend_config", "{0} is not UTF-8 text, so not a JSON file".format(path)) from None
    if len(text) > BACKEND_CONFIG_MAX:
        raise TemplateError("backend_config", "{0} is larger than 1 MiB, so not a kubernetes_config.json".format(path))
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TemplateError("backend_config", _json_problem(path, text, exc)) from None
    if not isinstance(data, dict):
        raise TemplateError("backend_config", "{0} must hold a JSON object".format(path))
    unknown = sorted(set(data) - set(BACKEND_KEYS))
    if unknown:
        raise TemplateError(
            "backend_config",
            "{0} has {1} unknown key(s), not quoted here{2}; known: {3}".format(
                path, len(unknown), _near_misses(unknown, BACKEND_KEYS), ", ".join(BACKEND_KEYS)
            ),
        )
    for key in BACKEND_KEYS:
        if key in data and not isinstance(data[key], str):
            raise TemplateError("backend_config", "{0} in {1} must be a string".format(key, path))
    template_path = data.get("kube-job-template-path")
    if template_path and not os.path.isabs(template_path):
        here = os.path.abspath(os.path.join(base_dir or os.getcwd(), template_path))
        beside = os.path.join(os.path.dirname(os.path.abspath(path)), template_path)
        data["kube-job-template-path"] = beside if not os.path.exists(here) and os.path.exists(beside) else here
    return data


def _near_misses(keys, known):
    """`` (did you mean ...?)`` for keys one typo from a known one; other keys are not quoted (they are content)."""
    hints = []
    for key in keys:
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.85)
        if close:
            hints.append("{0!r} for {1!r}".format(close[0], key))
    return " (did you mean {0}?)".format(", ".join(hints)) if hints else ""


def _json_problem(path, text, exc):
    """Where ``text`` of ``path`` is not JSON, and why, without quoting it.

    The reason is json's own fixed wording (``Expecting ',' delimiter``); MLflow's docs put ``#``
    comments in the file, so a comment where JSON failed is said so, in our words.
    """
    line = getattr(exc, "lineno", None)
    column = getattr(exc, "colno", None)
    reason = getattr(exc, "msg", None) or "not JSON"
    if line is None:
        return "{0} is not valid JSON: {1}".format(path, reason)
    message = "{0} is not valid JSON (line {1}, column {2}): {3}".format(path, line, column, reason)
    lines = text.splitlines()
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    if source[(column or 1) - 1 :].lstrip().startswith(("#", "//", "/*")):
        message += " (a comment: JSON has no comments, remove it)"
    return message


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def yaml_problem(source, exc):
    """A YAML error of ``source`` as ``line L, column C: problem``, quoting nothing of the file.

    PyYAML's own text can hold the file's tokens (``found undefined alias 'x'``): quoted parts go.
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "not valid YAML"
    problem = _QUOTED.sub("...", str(problem))
    if mark is None:
        return "{0} is not valid YAML: {1}".format(source, problem)
    return "{0} is not valid YAML (line {1}, column {2}): {3}".format(source, mark.line + 1, mark.column + 1, problem)


def load_template(source, option="job_template"):
    """A Job template from a dict, a YAML/JSON file path, or None (the built-in template)."""
    if source is None:
        return copy.deepcopy(DEFAULT_TEMPLATE)
    if isinstance(source, dict):
        template = copy.deepcopy(source)
    else:
        try:
            with open(source, encoding="utf-8") as handle:
                template = yaml.safe_load(handle)
        except (OSError, IOError) as exc:
            raise TemplateError(
                option, "cannot read the Job template {0}: {1}".format(source, exc.strerror or "error")
            ) from None
        except UnicodeDecodeError:
            raise TemplateError(option, "the Job template {0} is not UTF-8 text".format(source)) from None
        except yaml.YAMLError as exc:
            raise TemplateError(option, "the Job template " + yaml_problem(source, exc)) from None
    validate_template(template, option)
    return template


def template_warnings(template, option="job_template"):
    """What a valid template asks for that the Job would silently lose: messages naming the field."""
    warnings = []
    pod_spec = ((template.get("spec") or {}).get("template") or {}).get("spec") or {}
    if "resources" in pod_spec:
        warnings.append(
            "{0}: spec.template.spec.resources (pod-level resources) is ignored where the PodLevelResources "
            "feature is off, and its limits are lost; put requests and limits under "
            "spec.template.spec.containers[0].resources (or use the resources option)".format(option)
        )
    return warnings


def validate_template(template, option="job_template"):
    if not isinstance(template, dict):
        raise TemplateError(option, "the Job template must be a mapping")
    kind = template.get("kind", "Job")
    if kind != "Job":
        raise TemplateError(option, "the template's kind is {0!r}; only kind: Job is supported".format(kind))
    api = template.get("apiVersion", "batch/v1")
    if api != "batch/v1":
        raise TemplateError(option, "the template's apiVersion is {0!r}; expected batch/v1".format(api))
    spec = template.get("spec")
    pod = spec.get("template") if isinstance(spec, dict) else None
    pod_spec = pod.get("spec") if isinstance(pod, dict) else None
    containers = pod_spec.get("containers") if isinstance(pod_spec, dict) else None
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise TemplateError(option, "the Job template has no container under spec.template.spec.containers")
    if "metadata" in template and not isinstance(template["metadata"], dict):
        raise TemplateError(option, "the template's metadata must be a mapping")
    return template


def identity(content_hash, entry_point, parameters, run_name, experiment=None, job=None):
    """What makes two submissions the same: project content, entry point, parameters, run name,
    experiment, and ``job``: the Job as rendered without the run's own values (image, template,
    every option that shapes it), so a fixed template or another image is another submission."""
    payload = json.dumps(
        {
            "content": content_hash,
            "entry_point": entry_point,
            "parameters": sorted((str(k), str(v)) for k, v in (parameters or {}).items()),
            "run_name": run_name or "",
            "experiment": experiment or "",
            "job": job or {},
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def identity_label(identity_hash):
    return identity_hash[:40]


def check_labels(labels, option):
    """Fail naming ``option`` on an invalid label, or one under our own prefix (the module sets those)."""
    for key, value in (labels or {}).items():
        if not _LABEL_KEY.match(str(key)) or len(str(key).rsplit("/", maxsplit=1)[-1]) > MAX_NAME:
            raise TemplateError(option, "{0!r} is not a valid label key".format(key))
        if str(key).startswith(LABEL_PREFIX + "/"):
            raise TemplateError(option, "{0!r}: labels under {1}/ are set by the module".format(key, LABEL_PREFIX))
        text = str(value)
        if len(text) > MAX_NAME or (text and not _LABEL_VALUE.match(text)):
            raise TemplateError(option, "{0!r} is not a valid value for label {1!r}".format(value, key))


def check_env(env, option="env"):
    """``env`` as EnvVar dicts (env_list), refusing the names the module sets (RUN_ENV_NAMES)."""
    items = env_list(env, option)
    for item in items:
        if item["name"] in RUN_ENV_NAMES:
            raise TemplateError(
                option, "{0} is set by the module; use job_tracking_uri for the tracking URI".format(item["name"])
            )
    return items


def env_list(env, option="env"):
    """``env`` as a list of EnvVar dicts: a mapping name -> value, or a list of EnvVar dicts."""
    if env is None:
        return []
    if isinstance(env, dict):
        items = [{"name": str(k), "value": "" if v is None else str(v)} for k, v in env.items()]
    elif isinstance(env, list):
        items = []
        for item in env:
            if not isinstance(item, dict) or "name" not in item:
                raise TemplateError(option, "each entry must be a mapping with a name, got {0!r}".format(item))
            items.append(copy.deepcopy(item))
    else:
        raise TemplateError(option, "must be a mapping or a list of EnvVar mappings")
    for item in items:
        if not _ENV_NAME.match(str(item["name"])):
            raise TemplateError(option, "{0!r} is not a valid environment variable name".format(item["name"]))
    return items


def render_job(
    template,
    *,
    name,
    container_name,
    image,
    command,
    run_env,
    namespace=None,
    labels=None,
    annotations=None,
    overrides=None,
):
    """The Job manifest: the template with MLflow's replacements and our options merged in.

    ``run_env`` (MLFLOW_RUN_ID, MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_ID) is appended after the
    template's env and the user's env, as MLflow appends it. ``overrides`` holds the module's
    merge options (service_account, image_pull_secrets, resources, node_selector, tolerations,
    env, env_from_secrets, backoff_limit, active_deadline_seconds, ttl_seconds_after_finished).
    """
    overrides = overrides or {}
    job = copy.deepcopy(template)
    job.setdefault("apiVersion", "batch/v1")
    job.setdefault("kind", "Job")
    metadata = job.setdefault("metadata", {})
    metadata["name"] = name
    metadata["namespace"] = namespace or metadata.get("namespace") or "default"
    check_labels(overrides.get("labels"), "labels")
    metadata["labels"] = _merge_labels(metadata.get("labels"), overrides.get("labels"), labels)
    all_annotations = dict(metadata.get("annotations") or {})
    all_annotations.update(annotations or {})
    metadata["annotations"] = all_annotations

    spec = job["spec"]
    for option, key in (
        ("backoff_limit", "backoffLimit"),
        ("active_deadline_seconds", "activeDeadlineSeconds"),
        ("ttl_seconds_after_finished", "ttlSecondsAfterFinished"),
    ):
        if overrides.get(option) is not None:
            spec[key] = overrides[option]
    pod = spec["template"]
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = _merge_labels(pod_meta.get("labels"), overrides.get("labels"), labels)
    pod_spec = pod["spec"]
    pod_spec.setdefault("restartPolicy", "Never")
    if overrides.get("service_account"):
        pod_spec["serviceAccountName"] = overrides["service_account"]
    if overrides.get("image_pull_secrets"):
        existing = [s.get("name") for s in pod_spec.get("imagePullSecrets") or []]
        pod_spec["imagePullSecrets"] = list(pod_spec.get("imagePullSecrets") or []) + [
            {"name": s} for s in overrides["image_pull_secrets"] if s not in existing
        ]
    if overrides.get("node_selector"):
        selector = dict(pod_spec.get("nodeSelector") or {})
        selector.update(dict((str(k), str(v)) for k, v in overrides["node_selector"].items()))
        pod_spec["nodeSelector"] = selector
    if overrides.get("tolerations"):
        pod_spec["tolerations"] = list(pod_spec.get("tolerations") or []) + list(overrides["tolerations"])

    container = pod_spec["containers"][0]
    container["name"] = container_name
    container["image"] = image
    container["command"] = list(command)
    container.pop("args", None)
    if overrides.get("resources"):
        resources = copy.deepcopy(container.get("resources") or {})
        for section, values in overrides["resources"].items():
            if section not in ("limits", "requests") or not isinstance(values, (dict, type(None))):
                raise TemplateError(
                    "resources",
                    "expected limits and/or requests, each a mapping of resource name to quantity "
                    "(requests.cpu=2, limits.nvidia.com/gpu=1), got {0}={1!r}".format(section, values),
                )
            merged = dict(resources.get(section) or {})
            merged.update(dict((str(k), str(v)) for k, v in (values or {}).items()))
            resources[section] = merged
        container["resources"] = resources
    env = list(container.get("env") or [])
    user_env = check_env(overrides.get("env"))
    env = [e for e in env if e.get("name") not in set(i["name"] for i in user_env) | set(run_env)] + user_env
    env += [{"name": key, "value": str(value)} for key, value in run_env.items()]
    container["env"] = env
    if overrides.get("env_from_secrets"):
        container["envFrom"] = list(container.get("envFrom") or []) + [
            {"secretRef": {"name": s}} for s in overrides["env_from_secrets"]
        ]
    return job


def _merge_labels(template_labels, user_labels, own_labels):
    """The template's labels, the user's over them, the standard ones where neither set them, ours last.

    ``own_labels`` carry our prefix (mlops.mlflow-k8s/...), which users cannot set (check_labels).
    """
    merged = dict(template_labels or {})
    merged.update(user_labels or {})
    for key, value in STANDARD_LABELS.items():
        merged.setdefault(key, value)
    merged.update(own_labels or {})
    return merged


def job_state(job):
    """``Complete``, ``Failed``, ``Running`` or ``Pending`` from a Job dict's status."""
    status = (job or {}).get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return condition["type"]
    if status.get("startTime") or status.get("active"):
        return "Running"
    return "Pending"


def job_condition_message(job):
    status = (job or {}).get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return condition.get("message") or condition.get("reason") or ""
    return ""


# -- Pod Security (https://kubernetes.io/docs/concepts/security/pod-security-standards/) --------
POD_SECURITY_LEVELS = ("restricted", "baseline", "privileged")
_CONTAINER_KINDS = ("initContainers", "containers", "ephemeralContainers")
# baseline: capabilities a container may add (the container runtime's default set)
_BASELINE_CAPABILITIES = frozenset(
    (
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    )
)
_SAFE_SYSCTLS = frozenset(
    (
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    )
)
_SELINUX_TYPES = frozenset(("", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"))
_RESTRICTED_VOLUMES = frozenset(
    (
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    )
)
_SECCOMP_RESTRICTED = ("RuntimeDefault", "Localhost")
_APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def _mapping(value):
    return value if isinstance(value, dict) else {}


def _containers(pod_spec, path):
    """(path, container) of every init, regular and ephemeral container of ``pod_spec``."""
    for kind in _CONTAINER_KINDS:
        items = pod_spec.get(kind)
        for index, container in enumerate(items if isinstance(items, list) else []):
            if isinstance(container, dict):
                yield "{0}.{1}[{2}]".format(path, kind, index), container


def _seccomp_type(context):
    return _mapping(_mapping(context).get("seccompProfile")).get("type")


def _context_baseline(context, where):
    """What a pod's or a container's securityContext breaks of baseline, ``where`` its path."""
    out = []
    if _mapping(context.get("windowsOptions")).get("hostProcess"):
        out.append("{0}.windowsOptions.hostProcess must not be true".format(where))
    if _seccomp_type(context) == "Unconfined":
        out.append("{0}.seccompProfile.type must not be Unconfined".format(where))
    if _mapping(context.get("appArmorProfile")).get("type") == "Unconfined":
        out.append("{0}.appArmorProfile.type must not be Unconfined".format(where))
    selinux = _mapping(context.get("seLinuxOptions"))
    if selinux.get("type", "") not in _SELINUX_TYPES:
        out.append("{0}.seLinuxOptions.type must be unset or a container_* type".format(where))
    for key in ("user", "role"):
        if selinux.get(key):
            out.append("{0}.seLinuxOptions.{1} must be unset".format(where, key))
    return out


def baseline_violations(pod_spec, path="spec.template.spec", annotations=None):
    """Every field of ``pod_spec`` that breaks Pod Security ``baseline``, each named by its path.

    ``path`` is where the pod spec sits (a Job's by default); ``annotations`` are the pod's
    (its template's metadata), for the AppArmor ones.
    """
    pod_spec = _mapping(pod_spec)
    out = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key):
            out.append("{0}.{1} must not be true (a host namespace)".format(path, key))
    pod_context = _mapping(pod_spec.get("securityContext"))
    out.extend(_context_baseline(pod_context, path + ".securityContext"))
    for index, sysctl in enumerate(pod_context.get("sysctls") or []):
        if _mapping(sysctl).get("name") not in _SAFE_SYSCTLS:
            out.append("{0}.securityContext.sysctls[{1}] is not a safe sysctl".format(path, index))
    volumes = pod_spec.get("volumes")
    for index, volume in enumerate(volumes if isinstance(volumes, list) else []):
        if "hostPath" in _mapping(volume):
            out.append("{0}.volumes[{1}].hostPath: hostPath volumes are not allowed".format(path, index))
    for where, container in _containers(pod_spec, path):
        context = _mapping(container.get("securityContext"))
        if context.get("privileged"):
            out.append("{0}.securityContext.privileged must not be true".format(where))
        added = _mapping(context.get("capabilities")).get("add") or []
        for cap in added if isinstance(added, list) else [added]:
            if str(cap) not in _BASELINE_CAPABILITIES:
                out.append("{0}.securityContext.capabilities.add must not hold {1}".format(where, cap))
        if context.get("procMount") not in (None, "Default"):
            out.append("{0}.securityContext.procMount must be Default".format(where))
        out.extend(_context_baseline(context, where + ".securityContext"))
        ports = container.get("ports")
        for index, port in enumerate(ports if isinstance(ports, list) else []):
            if _mapping(port).get("hostPort"):
                out.append("{0}.ports[{1}].hostPort must be unset or 0".format(where, index))
    for key, value in sorted(_mapping(annotations).items()):
        if str(key).startswith(_APPARMOR_PREFIX) and not (
            value == "runtime/default" or str(value).startswith("localhost/")
        ):
            out.append("spec.template.metadata.annotations[{0}] must be runtime/default or localhost/*".format(key))
    return out


def restricted_violations(pod_spec, path="spec.template.spec", annotations=None):
    """Every field of ``pod_spec`` that breaks Pod Security ``restricted`` (baseline's too), by path.

    Per container (init containers too): ``runAsNonRoot`` true (its own, else the pod's),
    ``runAsUser`` not 0, ``allowPrivilegeEscalation`` false, ``capabilities.drop`` holding
    ``ALL`` and ``add`` nothing but ``NET_BIND_SERVICE``, ``seccompProfile`` RuntimeDefault or
    Localhost (its own, else the pod's); no volume types but configMap, csi, downwardAPI,
    emptyDir, ephemeral, image, persistentVolumeClaim, projected and secret. A field the pod can
    carry for its containers, unset on both, is named once at the pod
    (``spec.template.spec.securityContext.runAsNonRoot``); every other one at its container.
    """
    pod_spec = _mapping(pod_spec)
    out = baseline_violations(pod_spec, path, annotations)
    pod_context = _mapping(pod_spec.get("securityContext"))
    pod_where = path + ".securityContext"
    volumes = pod_spec.get("volumes")
    for index, volume in enumerate(volumes if isinstance(volumes, list) else []):
        kinds = sorted(set(_mapping(volume)) - {"name"})
        for kind in kinds:
            if kind not in _RESTRICTED_VOLUMES and kind != "hostPath":  # hostPath: named by baseline
                out.append("{0}.volumes[{1}].{2}: {2} volumes are not allowed".format(path, index, kind))
    if pod_context.get("runAsUser") == 0:
        out.append("{0}.runAsUser must not be 0".format(pod_where))
    # runAsNonRoot and seccompProfile: a container's own value, else the pod's; a value set to
    # something else anywhere breaks it, and unset on both is named once, at the pod.
    pod_nonroot = pod_context.get("runAsNonRoot")
    if pod_nonroot is not None and pod_nonroot is not True:
        out.append("{0}.runAsNonRoot must be true".format(pod_where))
    pod_seccomp = _seccomp_type(pod_context)
    if pod_seccomp not in (None, "Unconfined") + _SECCOMP_RESTRICTED:  # Unconfined: named by baseline
        out.append("{0}.seccompProfile.type must be RuntimeDefault or Localhost".format(pod_where))
    unset_named = set()
    for where, container in _containers(pod_spec, path):
        context = _mapping(container.get("securityContext"))
        sc_where = where + ".securityContext"
        nonroot = context.get("runAsNonRoot")
        if nonroot is None:
            if pod_nonroot is None and "runAsNonRoot" not in unset_named:
                unset_named.add("runAsNonRoot")
                out.append("{0}.runAsNonRoot must be true (or each container's)".format(pod_where))
        elif nonroot is not True:
            out.append("{0}.runAsNonRoot must be true".format(sc_where))
        if context.get("runAsUser") == 0:
            out.append("{0}.runAsUser must not be 0".format(sc_where))
        seccomp = _seccomp_type(context)
        if seccomp is None:
            if pod_seccomp is None and "seccompProfile" not in unset_named:
                unset_named.add("seccompProfile")
                out.append(
                    "{0}.seccompProfile.type must be RuntimeDefault or Localhost (or each container's)".format(
                        pod_where
                    )
                )
        elif seccomp not in _SECCOMP_RESTRICTED + ("Unconfined",):  # Unconfined: named by baseline
            out.append("{0}.seccompProfile.type must be RuntimeDefault or Localhost".format(sc_where))
        if context.get("allowPrivilegeEscalation") is not False:
            out.append("{0}.allowPrivilegeEscalation must be false".format(sc_where))
        capabilities = _mapping(context.get("capabilities"))
        dropped = capabilities.get("drop") or []
        if "ALL" not in (dropped if isinstance(dropped, list) else [dropped]):
            out.append("{0}.capabilities.drop must hold ALL".format(sc_where))
        added = capabilities.get("add") or []
        for cap in added if isinstance(added, list) else [added]:
            if str(cap) in _BASELINE_CAPABILITIES and str(cap) != "NET_BIND_SERVICE":  # others: named by baseline
                out.append("{0}.capabilities.add must not hold {1} (only NET_BIND_SERVICE)".format(sc_where, cap))
    return out


def pod_security_violations(job, level):
    """The violations of ``level`` (restricted, baseline, privileged) in a Job or Job template."""
    if level == "privileged":
        return []
    pod = _mapping(_mapping(_mapping(job).get("spec")).get("template"))
    annotations = _mapping(pod.get("metadata")).get("annotations")
    check = restricted_violations if level == "restricted" else baseline_violations
    return check(pod.get("spec"), "spec.template.spec", annotations)


def check_pod_security(job, level, option):
    """Fail naming ``option`` and every offending field when ``job`` breaks Pod Security ``level``."""
    if level not in POD_SECURITY_LEVELS:
        raise TemplateError(
            "pod_security", "must be one of {0}, got {1!r}".format(", ".join(POD_SECURITY_LEVELS), level)
        )
    violations = pod_security_violations(job, level)
    if violations:
        raise TemplateError(
            option,
            "the Job breaks Pod Security {0} (pod_security: {0}): {1}".format(level, "; ".join(violations)),
            violations=violations,
        )


# -- the tracking server a Job names -----------------------------------------------------------
def recorded_tracking_uri(job):
    """The tracking URI the submitter wrote on the Job (an annotation anyone who edits Jobs can change)."""
    return _mapping(_mapping(_mapping(job).get("metadata")).get("annotations")).get(ANNOTATION_TRACKING_URI) or None


def _same_uri(first, second):
    return str(first or "").rstrip("/") == str(second or "").rstrip("/")


class TrackingGuard(object):
    """The controller's MLflow credentials go to the operator's tracking server only (issue #27).

    A Job's ``mlops.mlflow-k8s/tracking-uri`` annotation can be written by anyone who can edit
    Jobs in its namespace; a tracker built for it would send the controller's
    MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN there. :meth:`tracker` is the factory to hand the
    runner: it builds a tracker for ``tracking_uri`` (the module option, or its environment
    fallback) and for no other URI (None: the run is not read). :meth:`jobs_factory` wraps the
    runner's Jobs client so that each Job naming another server is recorded; :meth:`report`
    warns about them, and adds ``recorded_tracking_uri`` to the Jobs a result lists.
    :meth:`install` does both on a runner.Runner.
    """

    def __init__(self, tracking_uri, tracker_factory=None):
        self._factory = tracker_factory
        self.tracking_uri = tracking_uri or None
        self.foreign = {}  # (namespace, name) -> the URI the Job names

    def tracker(self, uri):
        if not uri or (self.tracking_uri and _same_uri(uri, self.tracking_uri)):
            return self._factory(uri)
        return None

    def audit(self, job):
        recorded = recorded_tracking_uri(job)
        if recorded and not (self.tracking_uri and _same_uri(recorded, self.tracking_uri)):
            metadata = _mapping(_mapping(job).get("metadata"))
            self.foreign[(metadata.get("namespace"), metadata.get("name"))] = recorded
        return job

    def jobs_factory(self, factory):
        def make(*args, **kwargs):
            return _AuditedJobs(factory(*args, **kwargs), self)

        return make

    def install(self, runner):
        """Put the guard between ``runner`` (runner.Runner) and its tracker and Jobs factories."""
        self._factory = runner.tracker_factory
        runner.tracker_factory = self.tracker
        runner.jobs_factory = self.jobs_factory(runner.jobs_factory)
        return runner

    def report(self, result, warn):
        """Warn once per foreign URI; mark the Jobs of ``result['jobs']`` that name one."""
        for item in result.get("jobs") or []:
            recorded = self.foreign.get((item.get("namespace"), item.get("name")))
            if recorded:
                item["recorded_tracking_uri"] = recorded
        by_uri = {}
        for (namespace, name), uri in sorted(self.foreign.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
            by_uri.setdefault(uri, []).append("{0}/{1}".format(namespace, name))
        for uri, names in sorted(by_uri.items()):
            warn(
                "Job(s) {0} name the tracking server {1} in their {2} annotation, which is not tracking_uri ({3}); "
                "it was not contacted: anyone who can edit Jobs in the namespace can write that annotation, and the "
                "controller's MLflow credentials would go there".format(
                    ", ".join(names), uri, ANNOTATION_TRACKING_URI, self.tracking_uri or "not set"
                )
            )
        return result


class _AuditedJobs(object):
    """A Jobs client whose ``list`` and ``read`` show each Job to a :class:`TrackingGuard` first."""

    def __init__(self, jobs, guard):
        self._jobs = jobs
        self._guard = guard

    def __getattr__(self, name):
        return getattr(self._jobs, name)

    def list(self, *args, **kwargs):
        return [self._guard.audit(job) for job in self._jobs.list(*args, **kwargs)]

    def read(self, *args, **kwargs):
        job = self._jobs.read(*args, **kwargs)
        return self._guard.audit(job) if job else job
