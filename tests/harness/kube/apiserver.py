"""The API server's semantics over a generic, thread-safe object store.

Everything is kind-agnostic except what kube-apiserver itself does per kind: defaulting,
a few validation rules the OpenAPI schema cannot express, Secret `stringData`, Service IP
allocation and Namespace life cycle. Controllers live in `controllers.py` and write
through the same `Store` methods with `internal=True` (no validation, may write status).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime

from .catalog import Catalog, Resource
from .patching import PatchError, json_patch, merge_patch, strategic_merge

LOG_ANNOTATION = "standin.mlflow-k8s.test/log"
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_LABEL_KINDS = {"Namespace", "Service"}
_EVENT_HISTORY = 10000


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_NAME_CHARS) for _i in range(n))


def short_hash(data) -> str:
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).digest()
    return "".join(_NAME_CHARS[b % len(_NAME_CHARS)] for b in digest[:10])


# -- errors ------------------------------------------------------------------------------


class ApiError(Exception):
    """An error the API answers with a `Status` body."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict:
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(code: int, reason: str, message: str, details: dict | None = None, ok: bool = False) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success" if ok else "Failure"}
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = details
    body["code"] = code
    return body


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', _details(res, name))


def _details(res: Resource, name: str, **extra) -> dict:
    details = {"name": name, "group": res.group, "kind": res.plural, **extra}
    return {k: v for k, v in details.items() if v != ""}


def invalid(res: Resource, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid; causes are (field, reason, message) as the real API reports them."""
    parts = [f"{f}: {m}" for f, _reason, m in causes]
    text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = {"name": name, "group": res.group, "kind": res.kind}
    details["causes"] = [{"reason": r, "message": m, "field": f} for f, r, m in causes]
    details = {k: v for k, v in details.items() if v != ""}
    return ApiError(422, "Invalid", f'{res.kind_qualified} "{name}" is invalid: {text}', details)


# -- selectors ---------------------------------------------------------------------------

_REQUIREMENT = re.compile(
    r"\s*(?:(?P<not>!)\s*(?P<nkey>[^\s,!=()]+)"
    r"|(?P<key>[^\s,!=()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s,()]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*(?:,|$)"
)


def parse_label_selector(text: str | None) -> list[tuple[str, str, list[str]]]:
    """`a=b,c!=d,e in (f,g),!h,i` into (key, operator, values)."""
    reqs: list[tuple[str, str, list[str]]] = []
    pos, text = 0, (text or "").strip()
    while pos < len(text):
        m = _REQUIREMENT.match(text, pos)
        if not m or m.end() == pos:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: invalid label selector: {text!r}")
        if m["not"]:
            reqs.append((m["nkey"], "DoesNotExist", []))
        elif m["op"]:
            reqs.append((m["key"], "NotIn" if m["op"] == "!=" else "In", [m["value"]]))
        elif m["setop"]:
            values = [v.strip() for v in m["values"].split(",") if v.strip()]
            reqs.append((m["key"], "In" if m["setop"] == "in" else "NotIn", values))
        else:
            reqs.append((m["key"], "Exists", []))
        pos = m.end()
    return reqs


def requirements_match(reqs, labels: dict | None) -> bool:
    labels = labels or {}
    for key, op, values in reqs:
        present = key in labels
        if (
            (op == "In" and (not present or labels[key] not in values))
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def selector_matches(selector: dict | None, labels: dict | None) -> bool:
    """A LabelSelector object (matchLabels / matchExpressions); an empty one matches all."""
    selector = selector or {}
    reqs = [(k, "In", [v]) for k, v in (selector.get("matchLabels") or {}).items()]
    reqs += [(e["key"], e["operator"], e.get("values") or []) for e in selector.get("matchExpressions") or []]
    return requirements_match(reqs, labels)


def parse_field_selector(text: str | None) -> list[tuple[str, bool, str]]:
    out = []
    for part in filter(None, (text or "").split(",")):
        m = re.match(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {part!r}")
        out.append((m[1], m[2] != "!=", m[3]))
    return out


def field_value(obj: dict, path: str) -> str:
    cur = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if isinstance(cur, bool):
        return str(cur).lower()
    return "" if cur is None else str(cur)


def fields_match(reqs, obj: dict) -> bool:
    return all((field_value(obj, k) == v) == eq for k, eq, v in reqs)


# -- defaulting (what kube-apiserver's defaulters and strategies do) ----------------------


def _default_pod_spec(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        image = container.get("image", "")
        tag = image.rsplit("/", 1)[-1]
        latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports", []):
            port.setdefault("protocol", "TCP")


def _default_template(obj: dict) -> None:
    template = obj.setdefault("spec", {}).setdefault("template", {})
    template.setdefault("metadata", {})
    _default_pod_spec(template.setdefault("spec", {}))


def _default_pod(obj: dict, store: Store) -> None:
    spec = obj.setdefault("spec", {})
    _default_pod_spec(spec)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
    obj.setdefault("status", {}).setdefault("phase", "Pending")
    obj["status"].setdefault("qosClass", "BestEffort")


def _default_deployment(obj: dict, store: Store) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy.setdefault("type", "RollingUpdate") == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {}).setdefault("maxSurge", "25%")
        strategy["rollingUpdate"].setdefault("maxUnavailable", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _default_template(obj)


def _default_replicaset(obj: dict, store: Store) -> None:
    obj.setdefault("spec", {}).setdefault("replicas", 1)
    _default_template(obj)


def _default_statefulset(obj: dict, store: Store) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    if strategy.setdefault("type", "RollingUpdate") == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {"partition": 0})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    for claim in spec.get("volumeClaimTemplates", []):
        claim.setdefault("apiVersion", "v1")
        claim.setdefault("kind", "PersistentVolumeClaim")
        claim.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
        claim.setdefault("status", {"phase": "Pending"})
    _default_template(obj)


def _default_daemonset(obj: dict, store: Store) -> None:
    spec = obj.setdefault("spec", {})
    strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    if strategy.setdefault("type", "RollingUpdate") == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})
    spec.setdefault("revisionHistoryLimit", 10)
    _default_template(obj)


def _default_job(obj: dict, store: Store) -> None:
    spec = obj.setdefault("spec", {})
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    _default_template(obj)
    if not spec.get("manualSelector") and "uid" in obj["metadata"]:
        uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
        labels = spec["template"]["metadata"].setdefault("labels", {})
        for prefix in ("", "batch.kubernetes.io/"):
            labels[prefix + "controller-uid"] = uid
            labels[prefix + "job-name"] = name
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})


def _default_cronjob(obj: dict, store: Store) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_spec = spec.setdefault("jobTemplate", {}).setdefault("spec", {})
    job_spec.setdefault("template", {}).setdefault("metadata", {})
    _default_pod_spec(job_spec["template"].setdefault("spec", {}))


def _default_service(obj: dict, store: Store) -> None:
    spec = obj.setdefault("spec", {})
    kind = spec.setdefault("type", "ClusterIP")
    if kind != "ExternalName":
        if "clusterIP" not in spec:
            spec["clusterIP"] = store.allocate_ip()
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("sessionAffinity", "None")
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    for port in spec.get("ports", []):
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
        if kind in ("NodePort", "LoadBalancer") and "nodePort" not in port:
            port["nodePort"] = store.allocate_node_port()
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def _default_secret(obj: dict, store: Store) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {}) or {}
        obj["data"] = data
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _default_namespace(obj: dict, store: Store) -> None:
    name = obj["metadata"].get("name", "")
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")


def _default_pvc(obj: dict, store: Store) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    if "storageClassName" not in spec and not spec.get("volumeName"):
        default = store.default_storage_class()
        if default:
            spec["storageClassName"] = default
    obj.setdefault("status", {}).setdefault("phase", "Pending")


def _default_pv(obj: dict, store: Store) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")
    obj.setdefault("status", {}).setdefault("phase", "Pending")


DEFAULTERS = {
    "Pod": _default_pod,
    "Deployment": _default_deployment,
    "ReplicaSet": _default_replicaset,
    "StatefulSet": _default_statefulset,
    "DaemonSet": _default_daemonset,
    "Job": _default_job,
    "CronJob": _default_cronjob,
    "Service": _default_service,
    "Secret": _default_secret,
    "Namespace": _default_namespace,
    "PersistentVolumeClaim": _default_pvc,
    "PersistentVolume": _default_pv,
}

# Fields of a spec that may change on update; anything else is immutable (422).
_MUTABLE_SPEC = {
    "StatefulSet": {
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    },
    "PersistentVolumeClaim": {"resources", "volumeAttributesClassName", "volumeName", "storageClassName"},
}
_IMMUTABLE_FIELDS = {
    "Deployment": ("spec", "selector"),
    "ReplicaSet": ("spec", "selector"),
    "DaemonSet": ("spec", "selector"),
    "Job": ("spec", "template"),
    "Service": ("spec", "clusterIP"),
}


# -- the store ---------------------------------------------------------------------------


class Store:
    """Objects by resource key, one global resourceVersion counter, an event log."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects: dict[str, dict[tuple[str, str], dict]] = {}
        self.events: deque = deque(maxlen=_EVENT_HISTORY)
        self.oldest_rv = 0  # events at or before this are no longer held
        self.rv = 0
        self.closed = False
        self._ip = 10
        self._node_port = 30000
        self.namespaces = catalog.get("", "v1", "namespaces")
        self.warnings = threading.local()
        for ns in BUILTIN_NAMESPACES:
            self.create(self.namespaces, "", {"metadata": {"name": ns}}, internal=True)

    # helpers used by defaulters
    def allocate_ip(self) -> str:
        self._ip += 1
        return f"10.96.{self._ip // 250}.{self._ip % 250 + 1}"

    def allocate_node_port(self) -> int:
        used = {p.get("nodePort") for s in self.all("/services") for p in s.get("spec", {}).get("ports", [])}
        while self._node_port in used:
            self._node_port += 1
        self._node_port += 1
        return self._node_port - 1

    def default_storage_class(self) -> str | None:
        for sc in self.all("storage.k8s.io/storageclasses"):
            annotations = sc["metadata"].get("annotations") or {}
            if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
                return sc["metadata"]["name"]
        return None

    def warn(self, text: str) -> None:
        if not hasattr(self.warnings, "items"):
            self.warnings.items = []
        self.warnings.items.append(text)

    def take_warnings(self) -> list[str]:
        items = getattr(self.warnings, "items", [])
        self.warnings.items = []
        return items

    # raw access (callers hold self.lock)
    def all(self, key: str, namespace: str | None = None) -> list[dict]:
        objs = self.objects.get(key, {})
        if namespace is None:
            return list(objs.values())
        return [o for (ns, _name), o in objs.items() if ns == namespace]

    def find(self, key: str, namespace: str, name: str) -> dict | None:
        return self.objects.get(key, {}).get((namespace, name))

    def _record(self, res: Resource, etype: str, obj: dict, prev: dict | None = None) -> None:
        """Log an event; `prev` (the replaced object, never mutated again) lets a watch with
        a selector see an object enter or leave its selection."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if len(self.events) == self.events.maxlen:
            self.oldest_rv = self.events[0][0]
        self.events.append((self.rv, res.key, etype, copy.deepcopy(obj), prev))
        self.changed.notify_all()

    # -- reads ---------------------------------------------------------------------------

    def get(self, res: Resource, namespace: str, name: str) -> dict:
        with self.lock:
            obj = self.find(res.key, namespace if res.namespaced else "", name)
            if obj is None:
                raise not_found(res, name)
            return self._out(res, obj)

    def list(self, res: Resource, namespace: str | None, label_selector=None, field_selector=None) -> dict:
        labels, fields = parse_label_selector(label_selector), parse_field_selector(field_selector)
        with self.lock:
            items = [
                self._out(res, o)
                for o in self.all(res.key, namespace if res.namespaced else None)
                if requirements_match(labels, o["metadata"].get("labels")) and fields_match(fields, o)
            ]
            rv = str(self.rv)
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        for item in items:
            item.pop("apiVersion", None)
            item.pop("kind", None)
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    def _out(self, res: Resource, obj: dict) -> dict:
        out = copy.deepcopy(obj)
        out["apiVersion"], out["kind"] = res.api_version, res.kind
        return out

    # -- validation ----------------------------------------------------------------------

    def validate(self, res: Resource, obj: dict, old: dict | None, field_validation: str) -> None:
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName", "")
        if res.schema_key:
            validator = self.catalog.validator(res.schema_key)
            errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
            unknown = [e for e in errors if e.validator == "additionalProperties"]
            if unknown and field_validation == "Strict":
                fields = []
                for err in unknown:
                    known = set(err.schema.get("properties", {}))
                    fields += [_field(list(err.absolute_path) + [k]) for k in err.instance if k not in known]
                msg = ", ".join(f'unknown field "{f}"' for f in fields)
                raise ApiError(
                    400,
                    "BadRequest",
                    f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                    f"strict decoding error: {msg}",
                )
            for err in unknown:  # Warn or Ignore: dropped, as the real decoder drops them
                known = set(err.schema.get("properties", {}))
                for key in [k for k in err.instance if k not in known]:
                    del err.instance[key]
                    if field_validation == "Warn":
                        self.warn(f'unknown field "{_field(list(err.absolute_path) + [key])}"')
            bad_types = [e for e in errors if e.validator == "type"]
            if bad_types:
                err = bad_types[0]
                raise ApiError(
                    400,
                    "BadRequest",
                    f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                    f"json: cannot unmarshal {_json_type(err.instance)} into Go struct field "
                    f"{res.kind}.{_field(list(err.absolute_path))} of type {_go_type(err.validator_value)}",
                )
            causes = [
                (_field(list(e.absolute_path)), "FieldValueInvalid", _message(e))
                for e in errors
                if e.validator not in ("additionalProperties", "type")
            ]
            if causes:
                raise invalid(res, name, causes)
        causes = _semantic_checks(res, obj, old)
        if causes:
            raise invalid(res, name, causes)

    # -- writes --------------------------------------------------------------------------

    def create(
        self,
        res: Resource,
        namespace: str,
        body: dict,
        *,
        dry_run: bool = False,
        internal: bool = False,
        field_validation: str = "Strict",
    ) -> dict:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {}) or {}
        obj["metadata"] = meta
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        if res.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = namespace = namespace or body_ns or "default"
        else:
            meta.pop("namespace", None)
            namespace = ""
        for key in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "managedFields"):
            meta.pop(key, None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + random_suffix()
        if not internal and res.has_status and res.kind != "Node":  # a kubelet registers its Node with status
            obj.pop("status", None)
        with self.lock:
            if res.namespaced:
                ns_obj = self.find(self.namespaces.key, "", namespace)
                if ns_obj is None:
                    raise not_found(self.namespaces, namespace)
                if ns_obj["metadata"].get("deletionTimestamp"):
                    raise ApiError(
                        403,
                        "Forbidden",
                        f'{res.qualified} "{meta.get("name", "")}" is forbidden: unable to create new content '
                        f"in namespace {namespace} because it is being terminated",
                        _details(res, meta.get("name", ""), causes=[{"reason": "NamespaceTerminating"}]),
                    )
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            if res.has_status:
                meta["generation"] = 1
            defaulter = DEFAULTERS.get(res.kind)
            if defaulter:
                defaulter(obj, self)
            if not internal:
                self.validate(res, obj, None, field_validation)
            name = meta["name"]
            if self.find(res.key, namespace, name) is not None:
                raise ApiError(409, "AlreadyExists", f'{res.qualified} "{name}" already exists', _details(res, name))
            if dry_run:
                return self._out(res, obj)
            self.objects.setdefault(res.key, {})[(namespace, name)] = obj
            self._record(res, "ADDED", obj)
            return self._out(res, obj)

    def update(
        self,
        res: Resource,
        namespace: str,
        name: str,
        body: dict,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        internal: bool = False,
        field_validation: str = "Strict",
        check_version: bool = True,
    ) -> dict:
        namespace = namespace if res.namespaced else ""
        with self.lock:
            old = self.find(res.key, namespace, name)
            if old is None:
                raise not_found(res, name)
            new = copy.deepcopy(body)
            meta = new.setdefault("metadata", {}) or {}
            new["metadata"] = meta
            if meta.get("name", name) != name:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({name})",
                )
            wanted_rv = meta.get("resourceVersion")
            if check_version and wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                    _details(res, name),
                )
            new["apiVersion"], new["kind"] = res.api_version, res.kind
            keep = ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "generation")
            for key in keep:
                if key in old["metadata"]:
                    meta[key] = old["metadata"][key]
                else:
                    meta.pop(key, None)
            meta.pop("managedFields", None)
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            if subresource == "status":
                status = new.get("status")
                new = {**copy.deepcopy(old), "status": status}
                if res.kind == "Pod":  # pod status writers may also set labels and annotations
                    for key in ("labels", "annotations"):
                        if key in meta:
                            new["metadata"][key] = meta[key]
                        else:
                            new["metadata"].pop(key, None)
                if status is None:
                    new.pop("status", None)
            elif res.has_status and not internal:
                new.pop("status", None)
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
            defaulter = DEFAULTERS.get(res.kind)
            if defaulter and subresource != "status":
                _carry_allocations(res, new, old)
                defaulter(new, self)
            if not internal:
                self.validate(res, new, old, field_validation)
            if _spec_of(new) != _spec_of(old) and "generation" in old["metadata"]:
                new["metadata"]["generation"] = old["metadata"]["generation"] + 1
            if new == old:
                return self._out(res, old)
            if dry_run:
                return self._out(res, new)
            meta = new["metadata"]
            if meta.get("deletionTimestamp") and not meta.get("finalizers") and res.kind != "Namespace":
                return self._remove(res, new)
            self.objects[res.key][(namespace, name)] = new
            self._record(res, "MODIFIED", new, old)
            return self._out(res, new)

    def patch(
        self,
        res: Resource,
        namespace: str,
        name: str,
        patch_type: str,
        patch,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Strict",
        internal: bool = False,
    ) -> dict:
        with self.lock:
            current = self.find(res.key, namespace if res.namespaced else "", name)
            if current is None:
                if patch_type == "apply":
                    body = copy.deepcopy(patch)
                    return self.create(res, namespace, body, dry_run=dry_run, field_validation=field_validation)
                raise not_found(res, name)
            current = self._out(res, current)
            try:
                if patch_type == "json":
                    new = json_patch(current, patch)
                elif patch_type == "merge":
                    new = merge_patch(current, patch)
                elif patch_type in ("strategic", "apply"):
                    if not isinstance(patch, dict):
                        raise PatchError("strategic merge patch must be a JSON object")
                    schema = self.catalog.root_schema(res)
                    new = strategic_merge(current, patch, schema, self.catalog.resolve)
                else:
                    raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format")
            except PatchError as exc:
                raise ApiError(422, "Invalid", str(exc)) from exc
            if not isinstance(new, dict):
                raise ApiError(422, "Invalid", "the patch does not leave an object")
            meta = new.setdefault("metadata", {})
            if patch_type in ("json", "merge", "strategic") and "resourceVersion" not in (patch_meta(patch)):
                meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            return self.update(
                res,
                namespace,
                name,
                new,
                subresource=subresource,
                dry_run=dry_run,
                internal=internal,
                field_validation=field_validation,
                check_version=patch_type != "apply",
            )

    def delete(
        self,
        res: Resource,
        namespace: str,
        name: str,
        *,
        propagation: str | None = None,
        dry_run: bool = False,
        preconditions: dict | None = None,
    ) -> tuple[dict, bool]:
        """Delete; returns (object, gone). An object held by finalizers stays, marked."""
        namespace = namespace if res.namespaced else ""
        with self.lock:
            obj = self.find(res.key, namespace, name)
            if obj is None:
                raise not_found(res, name)
            pre_uid = (preconditions or {}).get("uid")
            if pre_uid and pre_uid != obj["metadata"]["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {res.qualified} "{name}": Precondition failed: '
                    f"UID in precondition: {pre_uid}, UID in object meta: {obj['metadata']['uid']}",
                    _details(res, name),
                )
            if propagation is None:
                propagation = "Orphan" if res.kind == "Job" else "Background"
                if res.kind == "Job":
                    self.warn(
                        "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background "
                        "to remove them or set propagationPolicy=Orphan to suppress this warning"
                    )
            if dry_run:
                return self._out(res, obj), True
            old, obj = obj, copy.deepcopy(obj)
            meta = obj["metadata"]
            finalizers = list(meta.get("finalizers") or [])
            if res.kind == "Namespace":
                finalizers.append("kubernetes")  # the namespace controller empties it first
                obj["status"]["phase"] = "Terminating"
            elif propagation == "Foreground":
                finalizers.append("foregroundDeletion")
            elif propagation == "Orphan":
                self._orphan(meta["uid"])
            if finalizers:
                if res.kind != "Namespace":
                    meta["finalizers"] = list(dict.fromkeys(finalizers))
                meta.setdefault("deletionTimestamp", now())
                meta.setdefault("deletionGracePeriodSeconds", 0)
                self.objects[res.key][(namespace, name)] = obj
                self._record(res, "MODIFIED", obj, old)
                return self._out(res, obj), False
            return self._remove(res, obj), True

    def _remove(self, res: Resource, obj: dict) -> dict:
        meta = obj["metadata"]
        del self.objects[res.key][(meta.get("namespace", ""), meta["name"])]
        self._record(res, "DELETED", obj)
        return self._out(res, obj)

    def _orphan(self, owner_uid: str) -> None:
        for key, objs in self.objects.items():
            for obj in list(objs.values()):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == owner_uid for r in refs):
                    new = copy.deepcopy(obj)
                    new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != owner_uid]
                    if not new["metadata"]["ownerReferences"]:
                        del new["metadata"]["ownerReferences"]
                    objs[(obj["metadata"].get("namespace", ""), obj["metadata"]["name"])] = new
                    self._record(self.resource_for(key), "MODIFIED", new, obj)

    def finish_namespace(self, name: str) -> None:
        """The namespace controller's last step: the namespace is empty, remove it."""
        with self.lock:
            obj = self.find(self.namespaces.key, "", name)
            if obj is not None:
                self._remove(self.namespaces, copy.deepcopy(obj))

    def resource_for(self, key: str) -> Resource:
        group, plural = key.split("/")
        return self.catalog.get(group, self.catalog.preferred(group), plural)

    # -- watch ---------------------------------------------------------------------------

    def watch(
        self,
        res: Resource,
        namespace: str | None,
        since: str | None,
        label_selector=None,
        field_selector=None,
        timeout: float = 1800,
    ) -> Iterator[tuple[str, dict]]:
        """Yields (type, object) events; ('ERROR', Status) when `since` is too old."""
        labels, fields = parse_label_selector(label_selector), parse_field_selector(field_selector)

        def wanted(obj: dict) -> bool:
            meta = obj["metadata"]
            return (
                (namespace is None or not res.namespaced or meta.get("namespace") == namespace)
                and requirements_match(labels, meta.get("labels"))
                and fields_match(fields, obj)
            )

        deadline = time.monotonic() + timeout
        with self.lock:
            if since in (None, "", "0"):
                cursor = self.rv
                initial = [("ADDED", self._out(res, o)) for o in self.all(res.key) if wanted(o)]
            else:
                try:
                    cursor = int(since)
                except ValueError:
                    raise ApiError(400, "BadRequest", f"invalid resource version: {since}") from None
                initial = []
                if cursor < self.oldest_rv:
                    initial = [
                        ("ERROR", status_body(410, "Expired", f"too old resource version: {since} ({self.oldest_rv})"))
                    ]
        yield from initial
        if initial and initial[-1][0] == "ERROR":
            return
        while True:
            with self.lock:
                while not self.closed and self.rv <= cursor and time.monotonic() < deadline:
                    self.changed.wait(min(1.0, max(0.0, deadline - time.monotonic())))
                if self.closed or time.monotonic() >= deadline:
                    return
                batch = []
                for event in reversed(self.events):  # newest first, stop at what was sent
                    if event[0] <= cursor:
                        break
                    if event[1] == res.key:
                        batch.append(event)
                batch.reverse()
                cursor = self.rv
            for _rv, _key, logged, obj, prev in batch:
                now, was = wanted(obj), prev is None or wanted(prev)
                etype = ("ADDED" if now else "DELETED") if logged == "MODIFIED" and now != was else logged
                if now or (etype == "DELETED" and was):
                    out = copy.deepcopy(obj)
                    out["apiVersion"], out["kind"] = res.api_version, res.kind
                    yield etype, out

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.changed.notify_all()


def patch_meta(patch) -> dict:
    if isinstance(patch, dict) and isinstance(patch.get("metadata"), dict):
        return patch["metadata"]
    return {}


def _spec_of(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _carry_allocations(res: Resource, new: dict, old: dict) -> None:
    """Values the server allocated survive an update that omits them (clusterIP, nodePort)."""
    if res.kind != "Service":
        return
    spec, old_spec = new.setdefault("spec", {}), old.get("spec", {})
    for key in ("clusterIP", "clusterIPs"):
        if key not in spec and key in old_spec:
            spec[key] = old_spec[key]
    old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in old_spec.get("ports", [])}
    for port in spec.get("ports", []):
        previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")), {})
        if "nodePort" not in port and "nodePort" in previous and spec.get("type") in ("NodePort", "LoadBalancer"):
            port["nodePort"] = previous["nodePort"]


def _json_type(value) -> str:
    names = {bool: "bool", str: "string", int: "number", float: "number", list: "array", dict: "object"}
    return names.get(type(value), "null")


def _go_type(types) -> str:
    wanted = [t for t in ([types] if isinstance(types, str) else types) if t != "null"]
    names = {
        "integer": "int32",
        "number": "float64",
        "string": "string",
        "boolean": "bool",
        "array": "[]",
        "object": "map",
    }
    return names.get(wanted[0], wanted[0]) if wanted else "null"


def _field(path: list) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _message(err) -> str:
    if err.validator == "required":
        return "Required value"
    if err.validator == "enum":
        allowed = ", ".join(f'"{v}"' for v in err.validator_value)
        return f"Unsupported value: {json.dumps(err.instance)}: supported values: {allowed}"
    return f"Invalid value: {json.dumps(err.instance)}: {err.message}"


def _semantic_checks(res: Resource, obj: dict, old: dict | None) -> list[tuple[str, str, str]]:
    """The validation rules of kube-apiserver that the OpenAPI schema does not carry."""
    causes = []
    meta = obj["metadata"]
    name = meta.get("name", "")
    pattern = _LABEL if res.kind in _DNS_LABEL_KINDS else _SUBDOMAIN
    limit = 63 if res.kind in _DNS_LABEL_KINDS else 253
    if not name:
        causes.append(("metadata.name", "FieldValueRequired", "Required value: name or generateName is required"))
    elif not pattern.match(name) or len(name) > limit:
        causes.append(
            (
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{name}": a lowercase RFC 1123 '
                f"{'label' if limit == 63 else 'subdomain'} must consist of lower case alphanumeric characters, "
                "'-' or '.', and must start and end with an alphanumeric character",
            )
        )
    for value in (meta.get("labels") or {}).values():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                (
                    "metadata.labels",
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": a valid label must be '
                    "an empty string or consist of alphanumeric characters, '-', '_' or '.'",
                )
            )
    spec = obj.get("spec") or {}
    if res.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        selector = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(("spec.selector", "FieldValueRequired", "Required value"))
        elif not selector_matches(selector, labels):
            causes.append(
                (
                    "spec.template.metadata.labels",
                    "FieldValueInvalid",
                    f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
                )
            )
    if res.kind == "Job":
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if policy not in ("OnFailure", "Never"):
            causes.append(
                (
                    "spec.template.spec.restartPolicy",
                    "FieldValueNotSupported",
                    f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
                )
            )
    pod_spec = spec if res.kind == "Pod" else ((spec.get("template") or {}).get("spec") or {})
    if res.kind in ("Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"):
        names = [c.get("name") for c in pod_spec.get("initContainers", []) + pod_spec.get("containers", [])]
        prefix = "spec" if res.kind == "Pod" else "spec.template.spec"
        if not pod_spec.get("containers"):
            causes.append((f"{prefix}.containers", "FieldValueRequired", "Required value"))
        for i, cname in enumerate(names):
            if names.index(cname) != i:
                causes.append((f"{prefix}.containers[{i}].name", "FieldValueDuplicate", f'Duplicate value: "{cname}"'))
    if old is not None:
        causes += _immutability(res, obj, old)
    return causes


def _immutability(res: Resource, new: dict, old: dict) -> list[tuple[str, str, str]]:
    causes = []
    data_keys = ("data", "binaryData")
    if old.get("immutable") and {k: new.get(k) for k in data_keys} != {k: old.get(k) for k in data_keys}:
        causes.append(("data", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set"))
    path = _IMMUTABLE_FIELDS.get(res.kind)
    if path:
        a, b = new.get(path[0], {}).get(path[1]), old.get(path[0], {}).get(path[1])
        if a != b:
            causes.append((".".join(path), "FieldValueInvalid", "Invalid value: field is immutable"))
    mutable = _MUTABLE_SPEC.get(res.kind)
    if mutable is not None:
        changed = {
            k
            for k in set(new.get("spec", {})) | set(old.get("spec", {}))
            if new.get("spec", {}).get(k) != old.get("spec", {}).get(k)
        }
        if changed - mutable and (old.get("status", {}).get("phase") == "Bound" or res.kind == "StatefulSet"):
            allowed = ", ".join(f"'{k}'" for k in sorted(mutable))
            kind = res.kind.lower()
            message = f"Forbidden: updates to {kind} spec for fields other than {allowed} are forbidden"
            causes.append(("spec", "FieldValueForbidden", message))
    if res.kind == "Pod":

        def stripped(spec: dict) -> dict:
            spec = copy.deepcopy(spec)
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                c.pop("image", None)
            for key in ("activeDeadlineSeconds", "tolerations", "nodeName"):
                spec.pop(key, None)
            return spec

        if stripped(new.get("spec", {})) != stripped(old.get("spec", {})):
            causes.append(
                (
                    "spec",
                    "FieldValueForbidden",
                    "Forbidden: pod updates may not change fields other than "
                    "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                    "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations)",
                )
            )
    return causes
