"""What the stand-in serves, derived rather than typed in.

Kinds, their schemas and the strategic-merge metadata come from the OpenAPI schemas that
the kubernetes-validate package ships; REST paths (plural names, scope, verbs,
subresources) come from the paths the generated `kubernetes` client calls. Both are
generated from the same Kubernetes OpenAPI document, so nothing here is a hand-kept table
except the list of API groups served.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import kubernetes
import kubernetes_validate

# Groups a control plane of a supported version serves, stable versions only.
SERVED_GROUPS = (
    "",
    "apps",
    "batch",
    "networking.k8s.io",
    "storage.k8s.io",
    "rbac.authorization.k8s.io",
    "policy",
    "autoscaling",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "scheduling.k8s.io",
    "node.k8s.io",
    "events.k8s.io",
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
)
# Virtual (create-only review) kinds and proxies are not objects a store can hold.
_SKIP_PLURALS = {"bindings", "componentstatuses"}
_SUBRESOURCES = {"status", "log", "binding", "scale"}
_SUBRESOURCE_KIND = {"binding": ("", "v1", "Binding"), "scale": ("autoscaling", "v1", "Scale")}
_VERB_OF = {
    ("collection", "GET"): ("list", "watch"),
    ("collection", "POST"): ("create",),
    ("collection", "DELETE"): ("deletecollection",),
    ("item", "GET"): ("get",),
    ("item", "PUT"): ("update",),
    ("item", "PATCH"): ("patch",),
    ("item", "DELETE"): ("delete",),
}
_PATH = re.compile(
    r"^/(?:api|apis/(?P<group>[^/{}]+))/(?P<version>v\d+)"
    r"(?P<ns>/namespaces/\{namespace\})?/(?P<plural>[a-z0-9]+)"
    r"(?P<item>/\{name\}(?:/(?P<sub>[a-z]+))?)?$"
)


@dataclass
class Resource:
    """One REST resource: a kind served under a plural name in a group/version."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: set[str] = field(default_factory=set)
    subresources: dict[str, set[str]] = field(default_factory=dict)
    schema_key: str | None = None
    delete_returns_object: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Store key: the same object under another version would share it."""
        return f"{self.group}/{self.plural}"

    @property
    def qualified(self) -> str:
        """`deployments.apps`, as error messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self) -> str:
        """`Deployment.apps`, as validation errors name a kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def discovery(self) -> list[dict]:
        singular = self.kind.lower()
        out = [
            {
                "name": self.plural,
                "singularName": singular,
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": sorted(self.verbs),
                "shortNames": [],
                "categories": ["all"] if self.group in ("", "apps", "batch") and self.namespaced else [],
            }
        ]
        for sub, verbs in sorted(self.subresources.items()):
            group, version, kind = _SUBRESOURCE_KIND.get(sub, (self.group, self.version, self.kind))
            entry = {"name": f"{self.plural}/{sub}", "singularName": "", "namespaced": self.namespaced}
            entry.update({"kind": kind, "verbs": sorted(verbs)})
            if (group, version) != (self.group, self.version):
                entry.update({"group": group, "version": version})
            out.append(entry)
        return out


def _plural_candidates(kind: str) -> list[str]:
    low = kind.lower()
    if low.endswith("s"):
        return [low, low + "es"]
    if low.endswith(("ch", "sh", "x")):
        return [low + "es"]
    if low.endswith("y") and low[-2:-1] not in "aeiou":
        return [low[:-1] + "ies"]
    return [low + "s"]


def _client_paths() -> tuple[set[tuple[str, str]], set[str]]:
    """(method, path) pairs of every call in the generated client, and the DELETE paths
    that answer with the deleted object rather than a Status."""
    api_dir = Path(kubernetes.client.__file__).parent / "api"
    pairs, returns_object = set(), set()
    for source in api_dir.glob("*_v[0-9]_api.py"):  # stable versions only
        answers, deletes = {}, {}
        for chunk in source.read_text().split("\n    def ")[1:]:
            name = chunk.split("(", 1)[0]
            call = re.search(r"method='(\w+)',\s*resource_path='([^']+)'", chunk)
            if call:
                pairs.add(call.groups())
                if call[1] == "DELETE":
                    deletes[name.removeprefix("_").removesuffix("_serialize")] = call[2]
            answer = re.search(r"'200': \"(\w+)\"", chunk)
            if answer:
                answers.setdefault(name, answer[1])
        returns_object.update(p for f, p in deletes.items() if answers.get(f) not in (None, "object", "V1Status"))
    return pairs, returns_object


def schema_dir(version: str) -> Path:
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    return base / f"v{version}-local-strict"


def available_versions() -> list[str]:
    return kubernetes_validate.utils.all_versions()


class Catalog:
    """Resources and schemas of one Kubernetes minor version."""

    def __init__(self, version: str | None = None):
        self.version = version or kubernetes_validate.latest_version()
        raw = json.loads((schema_dir(self.version) / "_definitions.json").read_text())
        self.defs: dict = raw["$defs"]
        gvk_schema = {}
        for key, schema in self.defs.items():
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                gvk_schema[(gvk["group"], gvk["version"], gvk["kind"])] = key
        self.resources: dict[tuple[str, str, str], Resource] = {}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._build(*_client_paths(), gvk_schema)

    def _build(self, pairs, returns_object, gvk_schema) -> None:
        kinds_by_gv: dict[tuple[str, str], list[str]] = {}
        for group, version, kind in gvk_schema:
            kinds_by_gv.setdefault((group, version), []).append(kind)
        for method, path in sorted(pairs):
            m = _PATH.match(path)
            if not m:
                continue
            group, version, plural = m["group"] or "", m["version"], m["plural"]
            if group not in SERVED_GROUPS or plural in _SKIP_PLURALS:
                continue
            if plural == "namespaces" and m["ns"]:
                continue
            kind = next(
                (k for k in kinds_by_gv.get((group, version), []) if plural in _plural_candidates(k)),
                None,
            )
            if kind is None or kind.endswith("List"):
                continue
            res = self.resources.get((group, version, plural))
            if res is None:
                res = Resource(group, version, plural, kind, bool(m["ns"]))
                res.schema_key = gvk_schema.get((group, version, kind))
                self.resources[(group, version, plural)] = res
            res.namespaced = res.namespaced or bool(m["ns"])
            sub = m["sub"]
            scope = "item" if m["item"] else "collection"
            if sub:
                if sub in _SUBRESOURCES:
                    res.subresources.setdefault(sub, set()).update(_VERB_OF.get(("item", method), ()))
            else:
                res.verbs.update(_VERB_OF.get((scope, method), ()))
                res.delete_returns_object |= method == "DELETE" and path in returns_object
        for res in self.resources.values():
            if "log" in res.subresources:
                res.subresources["log"] = {"get"}
            if "binding" in res.subresources:
                res.subresources["binding"] = {"create"}

    # -- lookups -------------------------------------------------------------------------

    def group_versions(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for group, version, _plural in self.resources:
            out.setdefault(group, [])
            if version not in out[group]:
                out[group].append(version)
        for versions in out.values():
            versions.sort(key=lambda v: int(re.sub(r"\D", "", v) or 0), reverse=True)
        return out

    def preferred(self, group: str) -> str:
        return self.group_versions()[group][0]

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for (g, v, _plural), r in sorted(self.resources.items()) if (g, v) == (group, version)]

    def get(self, group: str, version: str, plural: str) -> Resource | None:
        return self.resources.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        group, _slash, version = api_version.rpartition("/")
        for (g, v, _plural), res in self.resources.items():
            if (g, v, res.kind) == (group, version, kind):
                return res
        return None

    # -- schemas -------------------------------------------------------------------------

    def resolve(self, schema: dict | None) -> dict:
        """Follow a `$ref` into the definitions; {} for unknown."""
        while schema and "$ref" in schema:
            schema = self.defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return schema or {}

    def root_schema(self, res: Resource) -> dict:
        return self.defs.get(res.schema_key or "", {})

    def validator(self, schema_key: str) -> jsonschema.protocols.Validator:
        if schema_key not in self._validators:
            schema = {"$ref": f"#/$defs/{schema_key}", "$defs": self.defs}
            self._validators[schema_key] = jsonschema.Draft202012Validator(schema)
        return self._validators[schema_key]
