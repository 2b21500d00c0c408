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
variables and the names the module sets itself (:func:`check_env`).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
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
                "securityContext": {"runAsNonRoot": False},
                "containers": [
                    {
                        "name": "{replaced with MLflow Project name}",
                        "image": "{replaced with URI of Docker image created during Project execution}",
                        "command": ["{replaced with MLflow Project entry point command}"],
                        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
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


def load_backend_config(path, base_dir=None):
    """MLflow's kubernetes_config.json: ``kube-context``, ``repository-uri``, ``kube-job-template-path``.

    A relative ``kube-job-template-path`` is found as MLflow finds it, against the working
    directory (``base_dir`` when given), else beside the config file.
    """
    try:
        with open(path) as handle:
            text = handle.read()
    except (OSError, IOError) as exc:
        raise TemplateError("backend_config", "cannot read {0}: {1}".format(path, exc)) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TemplateError("backend_config", _json_problem(path, text, exc)) from None
    if not isinstance(data, dict):
        raise TemplateError("backend_config", "{0} must hold a JSON object".format(path))
    known = ("kube-context", "repository-uri", "kube-job-template-path")
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise TemplateError(
            "backend_config", "unknown key(s) {0} in {1} (known: {2})".format(unknown, path, ", ".join(known))
        )
    template_path = data.get("kube-job-template-path")
    if template_path and not os.path.isabs(template_path):
        here = os.path.abspath(os.path.join(base_dir or os.getcwd(), template_path))
        beside = os.path.join(os.path.dirname(os.path.abspath(path)), template_path)
        data["kube-job-template-path"] = beside if not os.path.exists(here) and os.path.exists(beside) else here
    return data


def _json_problem(path, text, exc):
    """Where ``text`` of ``path`` is not JSON, and why, in words (MLflow's docs put ``#`` comments in it)."""
    line = getattr(exc, "lineno", None)
    column = getattr(exc, "colno", None)
    reason = getattr(exc, "msg", None) or str(exc)
    if line is None:
        return "{0} is not JSON: {1}".format(path, reason)
    source = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
    message = "{0} is not JSON: line {1}, column {2}: {3}: {4}".format(path, line, column, reason, source.strip())
    rest = source[(column or 1) - 1 :].lstrip() if source else ""
    if rest.startswith(("#", "//", "/*")):
        message += " (JSON has no comments: remove the comment)"
    return message


def load_template(source, option="job_template"):
    """A Job template from a dict, a YAML/JSON file path, or None (the built-in template)."""
    if source is None:
        return copy.deepcopy(DEFAULT_TEMPLATE)
    if isinstance(source, dict):
        template = copy.deepcopy(source)
    else:
        try:
            with open(source) as handle:
                template = yaml.safe_load(handle)
        except (OSError, IOError, yaml.YAMLError) as exc:
            raise TemplateError(option, "cannot read the Job template {0}: {1}".format(source, exc)) from None
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
