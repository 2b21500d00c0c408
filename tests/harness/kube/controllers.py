"""The controllers a control plane runs (kube-controller-manager and the scheduler), small.

No kubelet: pods stay Pending (bound to a node by the scheduler) until someone writes
their status, as the no-kubelet helper does. The controllers react to those status writes
the way the real ones do: a Job completes when its pod Succeeded, a Deployment becomes
Available when its pods are Ready.

One thread runs every controller over the whole store after each change (and twice a
second for deadlines and TTLs), holding the store lock for a pass: the store of a test is
small, and a pass sees one consistent state.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from datetime import UTC, datetime

from .apiserver import ApiError, Store, now, parse_time, selector_matches, short_hash

log = logging.getLogger(__name__)

_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value) -> float:
    m = _QUANTITY.match(str(value or "0"))
    return float(m[1]) * _UNITS.get(m[2], 1) if m else 0.0


def condition(obj: dict, ctype: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == ctype), None)


def is_true(obj: dict, ctype: str) -> bool:
    cond = condition(obj, ctype)
    return bool(cond and cond.get("status") == "True")


def set_condition(conds: list, ctype: str, status: str, reason: str, message: str, *, update_time=False) -> None:
    """Add or change a condition; timestamps move only when something changed."""
    stamp = now()
    cur = next((c for c in conds if c["type"] == ctype), None)
    if cur is None:
        cur = {"type": ctype, "lastTransitionTime": stamp}
        if update_time:
            cur["lastUpdateTime"] = stamp
        conds.append(cur)
    elif cur.get("status") != status:
        cur["lastTransitionTime"] = stamp
    if update_time and (cur.get("reason"), cur.get("message"), cur.get("status")) != (reason, message, status):
        cur["lastUpdateTime"] = stamp
    cur.update({"status": status, "reason": reason, "message": message})


def active(pod: dict) -> bool:
    return pod["status"].get("phase") not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def controller_uid(obj: dict) -> str | None:
    return next((r["uid"] for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def owner_ref(owner: dict) -> dict:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _omit_zero(status: dict, keep=()) -> dict:
    return {k: v for k, v in status.items() if v not in (0, None, "", [], {}) or k in keep}


class ControllerManager:
    """Runs the controllers in one thread until stopped."""

    def __init__(self, store: Store):
        self.store = store
        cat = store.catalog
        self.r = {
            name: cat.get(group, cat.preferred(group), name)
            for group, name in [
                ("", "pods"),
                ("", "nodes"),
                ("", "namespaces"),
                ("", "serviceaccounts"),
                ("", "persistentvolumes"),
                ("", "persistentvolumeclaims"),
                ("", "events"),
                ("apps", "deployments"),
                ("apps", "replicasets"),
                ("apps", "statefulsets"),
                ("apps", "daemonsets"),
                ("batch", "jobs"),
                ("storage.k8s.io", "storageclasses"),
            ]
        }
        self._counted: dict[str, dict[str, set]] = {}  # job uid -> succeeded/failed pod uids
        self._index: dict[str, dict[str, list]] = {}
        self._index_rv: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="standin-controllers", daemon=True)
        self.controllers = [
            self.namespaces,
            self.garbage_collector,
            self.pv_binder,
            self.deployments,
            self.replicasets,
            self.statefulsets,
            self.daemonsets,
            self.jobs,
            self.scheduler,
        ]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.store.close()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        seen = -1
        store = self.store
        while not self._stop.is_set():
            with store.lock:
                if store.rv == seen:
                    store.changed.wait(0.5)
                if self._stop.is_set() or store.closed:
                    return
                seen = store.rv
                for control in self.controllers:
                    try:
                        control()
                    except ApiError as exc:  # a conflict with a concurrent client: retry next pass
                        log.debug("%s: %s", control.__name__, exc.message)
                    except Exception:  # keep the control plane alive, as a real one would
                        log.exception("controller %s failed", control.__name__)

    # -- store helpers -------------------------------------------------------------------

    def all(self, name: str, namespace: str | None = None) -> list[dict]:
        """The stored objects themselves: read them, never change them (writes copy)."""
        return self.store.all(self.r[name].key, namespace)

    def create(self, name: str, namespace: str, body: dict) -> dict:
        return self.store.create(self.r[name], namespace, body, internal=True)

    def write(self, name: str, obj: dict) -> dict:
        meta = obj["metadata"]
        return self.store.update(
            self.r[name], meta.get("namespace", ""), meta["name"], obj, internal=True, check_version=False
        )

    def write_status(self, name: str, obj: dict, status: dict) -> None:
        if obj.get("status") != status:
            self.write(name, {**obj, "status": status})

    def delete(self, name: str, obj: dict, propagation: str = "Background") -> None:
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp"):
            self.store.delete(self.r[name], meta.get("namespace", ""), meta["name"], propagation=propagation)

    def owned(self, name: str, owner: dict) -> list[dict]:
        """Objects of resource `name` whose controller is `owner`, from an index rebuilt after changes."""
        if self._index_rv.get(name) != self.store.rv:
            index: dict[str, list] = {}
            for obj in self.all(name):
                index.setdefault(controller_uid(obj), []).append(obj)
            self._index[name], self._index_rv[name] = index, self.store.rv
        return list(self._index[name].get(owner["metadata"]["uid"], []))

    def owned_pods(self, owner: dict) -> list[dict]:
        return self.owned("pods", owner)

    def pod_from_template(self, owner: dict, template: dict, **meta) -> dict:
        tmeta = template.get("metadata") or {}
        metadata = {k: copy.deepcopy(v) for k, v in tmeta.items() if k in ("labels", "annotations")}
        metadata.update(meta)
        metadata["ownerReferences"] = [owner_ref(owner)]
        if "name" not in metadata:
            metadata["generateName"] = owner["metadata"]["name"] + "-"
        return {"metadata": metadata, "spec": copy.deepcopy(template.get("spec") or {})}

    def available(self, pod: dict, min_ready: int = 0) -> bool:
        cond = condition(pod, "Ready")
        if not (active(pod) and cond and cond.get("status") == "True"):
            return False
        return not min_ready or time.time() - parse_time(cond["lastTransitionTime"]) >= min_ready

    # -- namespaces and service accounts -------------------------------------------------

    def namespaces(self) -> None:
        for ns in self.all("namespaces"):
            name = ns["metadata"]["name"]
            if ns["metadata"].get("deletionTimestamp"):
                left = 0
                for key in list(self.store.objects):
                    res = self.store.resource_for(key)
                    if not res.namespaced:
                        continue
                    for obj in self.store.all(key, name):
                        left += 1
                        if not obj["metadata"].get("deletionTimestamp"):
                            self.store.delete(res, name, obj["metadata"]["name"], propagation="Background")
                if not left:
                    self.store.finish_namespace(name)
            elif self.store.find(self.r["serviceaccounts"].key, name, "default") is None:
                self.create("serviceaccounts", name, {"metadata": {"name": "default"}})

    # -- garbage collector ---------------------------------------------------------------

    def garbage_collector(self) -> None:
        live: dict[str, dict] = {}
        for objs in self.store.objects.values():
            for obj in objs.values():
                live[obj["metadata"]["uid"]] = obj
        dependents: dict[str, list] = {}
        for key, objs in list(self.store.objects.items()):
            for obj in list(objs.values()):
                refs = obj["metadata"].get("ownerReferences") or []
                if not refs:
                    continue
                for ref in refs:
                    dependents.setdefault(ref.get("uid"), []).append(obj)
                owners = [live.get(r.get("uid")) for r in refs]
                gone = all(o is None for o in owners)
                foreground = any(
                    o is not None and "foregroundDeletion" in (o["metadata"].get("finalizers") or []) for o in owners
                )
                if (gone or foreground) and not obj["metadata"].get("deletionTimestamp"):
                    res = self.store.resource_for(key)
                    meta = obj["metadata"]
                    self.store.delete(res, meta.get("namespace", ""), meta["name"], propagation="Background")
        for uid, owner in live.items():
            finalizers = owner["metadata"].get("finalizers") or []
            if "foregroundDeletion" in finalizers and not dependents.get(uid):
                new = copy.deepcopy(owner)
                new["metadata"]["finalizers"] = [f for f in finalizers if f != "foregroundDeletion"]
                res = self.store.resource_for(self._key_of(owner))
                meta = new["metadata"]
                self.store.update(res, meta.get("namespace", ""), meta["name"], new, internal=True, check_version=False)

    def _key_of(self, obj: dict) -> str:
        group = obj["apiVersion"].rpartition("/")[0]
        res = next(r for r in self.store.catalog.resources.values() if (r.group, r.kind) == (group, obj["kind"]))
        return res.key

    # -- scheduler -----------------------------------------------------------------------

    def scheduler(self) -> None:
        nodes = [n for n in self.all("nodes") if is_true(n, "Ready") and not n.get("spec", {}).get("unschedulable")]
        pods = self.all("pods")
        load = {n["metadata"]["name"]: 0 for n in nodes}
        for pod in pods:
            node = pod["spec"].get("nodeName")
            if node in load and active(pod):
                load[node] += 1
        for pod in pods:
            spec = pod["spec"]
            if spec.get("nodeName") or not active(pod) or spec.get("schedulerName") != "default-scheduler":
                continue
            reason, fits = self._fitting_nodes(pod, nodes)
            conds = copy.deepcopy(pod["status"].get("conditions") or [])
            if fits:
                target = min(fits, key=lambda n: (load[n["metadata"]["name"]], n["metadata"]["name"]))
                name = target["metadata"]["name"]
                load[name] += 1
                conds = [c for c in conds if c["type"] != "PodScheduled"]
                conds.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": now()})
                status = {**pod["status"], "conditions": conds}
                self.write("pods", {**pod, "spec": {**spec, "nodeName": name}, "status": status})
            else:
                total = len(self.all("nodes"))
                message = (
                    f"0/{total} nodes are available: {reason}. "
                    f"preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
                )
                before = condition(pod, "PodScheduled") or {}
                set_condition(conds, "PodScheduled", "False", "Unschedulable", message)
                self.write_status("pods", pod, {**pod["status"], "conditions": conds})
                if (before.get("status"), before.get("message")) != ("False", message):
                    self._failed_scheduling(pod, message)

    def _failed_scheduling(self, pod: dict, message: str) -> None:
        """The event the scheduler records (events.k8s.io, read back through core/v1) when a
        pod does not fit: once per new reason, as the scheduler's event series aggregate."""
        meta = pod["metadata"]
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        name = f"{meta['name']}.{short_hash([meta['uid'], message])[:8].lower()}"
        if self.store.find(self.r["events"].key, meta["namespace"], name) is not None:
            return  # the same reason again after a change in between: already on record
        self.create(
            "events",
            meta["namespace"],
            {
                "metadata": {"name": name},
                "involvedObject": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta["uid"],
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "reason": "FailedScheduling",
                "message": message,
                "type": "Warning",
                "action": "Scheduling",
                "eventTime": stamp,
                "reportingComponent": "default-scheduler",
                "reportingInstance": "default-scheduler-standin",
                "source": {},
            },
        )

    def _fitting_nodes(self, pod: dict, nodes: list[dict]) -> tuple[str, list[dict]]:
        spec, ns = pod["spec"], pod["metadata"]["namespace"]
        allowed_nodes = None
        for volume in spec.get("volumes") or []:
            claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim_name:
                continue
            claim = self.store.find(self.r["persistentvolumeclaims"].key, ns, claim_name)
            if claim is None:
                return f'persistentvolumeclaim "{claim_name}" not found', []
            if claim["status"].get("phase") != "Bound":
                if self._binding_mode(claim) != "WaitForFirstConsumer":
                    return "pod has unbound immediate PersistentVolumeClaims", []
                continue
            pv = self.store.find(self.r["persistentvolumes"].key, "", claim["spec"].get("volumeName", ""))
            terms = ((pv or {}).get("spec", {}).get("nodeAffinity") or {}).get("required", {})
            if terms:
                fit = {n["metadata"]["name"] for n in nodes if _node_terms_match(terms, n)}
                allowed_nodes = fit if allowed_nodes is None else allowed_nodes & fit
        if not nodes:
            return "no nodes available to schedule pods", []
        fits = []
        for node in nodes:
            labels = node["metadata"].get("labels") or {}
            if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
                continue
            required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            )
            if required and not _node_terms_match(required, node):
                continue
            if any(not _tolerated(t, spec.get("tolerations") or []) for t in node.get("spec", {}).get("taints") or []):
                continue
            if allowed_nodes is not None and node["metadata"]["name"] not in allowed_nodes:
                continue
            fits.append(node)
        if not fits:
            return "node(s) didn't match Pod's node affinity/selector or had untolerated taints", fits
        return self._pod_affinity_fits(pod, nodes, fits)

    def _pod_affinity_fits(self, pod: dict, nodes: list[dict], fits: list[dict]) -> tuple[str, list[dict]]:
        """Required podAffinity: a node fits when, for every term, a running pod the term selects
        (in the term's namespaces, else the pod's) sits on a node with the same ``topologyKey``
        value. When no pod anywhere matches a term and the pod matches it itself, the term does
        not hold it back (the scheduler's rule for the first pod of a group)."""
        spec, meta = pod["spec"], pod["metadata"]
        terms = ((spec.get("affinity") or {}).get("podAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ) or []
        by_name = {n["metadata"]["name"]: n for n in nodes}
        for term in terms:
            namespaces = term.get("namespaces") or [meta["namespace"]]
            key = term["topologyKey"]
            matching = [
                p
                for p in self.all("pods")
                if p["metadata"]["namespace"] in namespaces
                and p["metadata"]["uid"] != meta.get("uid")
                and active(p)
                and selector_matches(term.get("labelSelector"), p["metadata"].get("labels"))
            ]
            if not matching and selector_matches(term.get("labelSelector"), meta.get("labels")):
                continue
            values = {
                (by_name[p["spec"]["nodeName"]]["metadata"].get("labels") or {}).get(key)
                for p in matching
                if p["spec"].get("nodeName") in by_name
            } - {None}
            fits = [n for n in fits if (n["metadata"].get("labels") or {}).get(key) in values]
        return "node(s) didn't match pod affinity rules", fits

    def _binding_mode(self, claim: dict) -> str:
        sc = self.store.find(self.r["storageclasses"].key, "", claim["spec"].get("storageClassName") or "")
        return (sc or {}).get("volumeBindingMode", "Immediate")

    # -- persistent volumes --------------------------------------------------------------

    def pv_binder(self) -> None:
        pvs = self.all("persistentvolumes")
        claims = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in self.all("persistentvolumeclaims")}
        for pv in pvs:
            ref = pv["spec"].get("claimRef")
            phase = pv["status"].get("phase")
            if not ref and phase != "Available":
                self.write_status("persistentvolumes", pv, {**pv["status"], "phase": "Available"})
            elif ref and phase == "Bound":
                claim = claims.get((ref.get("namespace"), ref.get("name")))
                if claim is None or (ref.get("uid") and claim["metadata"]["uid"] != ref["uid"]):
                    if pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
                        self.delete("persistentvolumes", pv)
                    else:
                        self.write_status("persistentvolumes", pv, {**pv["status"], "phase": "Released"})
        pvs = {pv["metadata"]["name"]: pv for pv in self.all("persistentvolumes")}
        for claim in claims.values():
            if claim["status"].get("phase") == "Bound" or claim["metadata"].get("deletionTimestamp"):
                continue
            pv = self._volume_for(claim, pvs)
            if pv is not None:
                self._bind(claim, pv)

    def _volume_for(self, claim: dict, pvs: dict) -> dict | None:
        spec, meta = claim["spec"], claim["metadata"]
        if spec.get("volumeName"):
            pv = pvs.get(spec["volumeName"])
            ref = (pv or {}).get("spec", {}).get("claimRef")
            if pv and (not ref or (ref.get("name"), ref.get("namespace")) == (meta["name"], meta["namespace"])):
                return pv
            return None
        if self._binding_mode(claim) == "WaitForFirstConsumer" and not any(
            p["spec"].get("nodeName")
            and any(
                (v.get("persistentVolumeClaim") or {}).get("claimName") == meta["name"]
                for v in p["spec"].get("volumes") or []
            )
            for p in self.all("pods", meta["namespace"])
        ):
            return None
        wanted = quantity(((spec.get("resources") or {}).get("requests") or {}).get("storage"))
        candidates = []
        for pv in pvs.values():
            ref = pv["spec"].get("claimRef")
            if ref and (ref.get("name"), ref.get("namespace")) != (meta["name"], meta["namespace"]):
                continue
            if not ref and pv["status"].get("phase") not in ("Available", "Pending"):
                continue
            pv_spec = pv["spec"]
            if (pv_spec.get("storageClassName") or "") != (spec.get("storageClassName") or ""):
                continue
            if not set(spec.get("accessModes") or []) <= set(pv_spec.get("accessModes") or []):
                continue
            if spec.get("selector") and not selector_matches(spec["selector"], pv["metadata"].get("labels")):
                continue
            size = quantity((pv_spec.get("capacity") or {}).get("storage"))
            if size >= wanted:
                candidates.append((size, pv["metadata"]["name"], pv))
        return min(candidates, key=lambda c: c[:2])[2] if candidates else None

    def _bind(self, claim: dict, pv: dict) -> None:
        meta = claim["metadata"]
        ref = {
            "kind": "PersistentVolumeClaim",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": "v1",
            "resourceVersion": meta["resourceVersion"],
        }
        pv = copy.deepcopy(pv)
        pv["spec"]["claimRef"] = {**(pv["spec"].get("claimRef") or {}), **ref}
        pv["status"] = {**pv["status"], "phase": "Bound"}
        pv["metadata"].setdefault("annotations", {})["pv.kubernetes.io/bound-by-controller"] = "yes"
        self.write("persistentvolumes", pv)
        claim = copy.deepcopy(claim)
        claim["spec"]["volumeName"] = pv["metadata"]["name"]
        claim["metadata"].setdefault("annotations", {})["pv.kubernetes.io/bind-completed"] = "yes"
        claim["status"] = {
            "phase": "Bound",
            "accessModes": pv["spec"].get("accessModes") or [],
            "capacity": pv["spec"].get("capacity") or {},
        }
        self.write("persistentvolumeclaims", claim)

    # -- workloads -----------------------------------------------------------------------

    def deployments(self) -> None:
        for dep in self.all("deployments"):
            meta, spec = dep["metadata"], dep["spec"]
            if meta.get("deletionTimestamp"):
                continue
            desired = spec.get("replicas", 1)
            template_hash = short_hash(spec["template"])
            owned = self.owned("replicasets", dep)
            revisions = [
                int((rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))
                for rs in owned
            ]
            new = next((rs for rs in owned if rs["metadata"]["labels"].get("pod-template-hash") == template_hash), None)
            annotations = {
                "deployment.kubernetes.io/desired-replicas": str(desired),
                "deployment.kubernetes.io/max-replicas": str(desired + _resolve(spec, "maxSurge", desired, up=True)),
            }
            if not spec.get("paused"):
                if new is None:
                    template = copy.deepcopy(spec["template"])
                    template["metadata"].setdefault("labels", {})["pod-template-hash"] = template_hash
                    selector = copy.deepcopy(spec["selector"])
                    selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash
                    revision = str(max(revisions, default=0) + 1)
                    body = {
                        "metadata": {
                            "name": f"{meta['name']}-{template_hash}",
                            "labels": template["metadata"]["labels"],
                            "annotations": {**annotations, "deployment.kubernetes.io/revision": revision},
                            "ownerReferences": [owner_ref(dep)],
                        },
                        "spec": {
                            "replicas": desired,
                            "selector": selector,
                            "template": template,
                            "minReadySeconds": spec.get("minReadySeconds", 0),
                        },
                    }
                    new = self.create("replicasets", meta["namespace"], body)
                    owned.append(new)
                else:
                    rs_ann = new["metadata"].get("annotations") or {}
                    revision = rs_ann.get("deployment.kubernetes.io/revision", "1")
                    if int(revision) < max(revisions, default=0):
                        revision = str(max(revisions) + 1)
                    wanted = {**rs_ann, **annotations, "deployment.kubernetes.io/revision": revision}
                    if new["spec"].get("replicas") != desired or rs_ann != wanted:
                        new = self.write(
                            "replicasets",
                            {
                                **new,
                                "metadata": {**new["metadata"], "annotations": wanted},
                                "spec": {**new["spec"], "replicas": desired},
                            },
                        )
                recreate = spec.get("strategy", {}).get("type") == "Recreate"
                done = (new.get("status") or {}).get("availableReplicas", 0) >= desired
                for rs in owned:
                    if (
                        rs is not new
                        and rs["metadata"]["uid"] != new["metadata"]["uid"]
                        and rs["spec"].get("replicas")
                        and (recreate or done)
                    ):
                        self.write("replicasets", {**rs, "spec": {**rs["spec"], "replicas": 0}})
                dep_ann = meta.get("annotations") or {}
                if dep_ann.get("deployment.kubernetes.io/revision") != revision:
                    dep = self.write(  # noqa: PLW2901 - the status below is written on the new version
                        "deployments",
                        {
                            **dep,
                            "metadata": {
                                **meta,
                                "annotations": {**dep_ann, "deployment.kubernetes.io/revision": revision},
                            },
                        },
                    )
            owned = self.owned("replicasets", dep)
            self._deployment_status(dep, owned, template_hash)

    def _deployment_status(self, dep: dict, owned: list[dict], template_hash: str) -> None:
        spec, desired = dep["spec"], dep["spec"].get("replicas", 1)
        new = next((rs for rs in owned if rs["metadata"]["labels"].get("pod-template-hash") == template_hash), None)

        def stat(rs: dict, key: str) -> int:
            return (rs.get("status") or {}).get(key, 0)

        replicas = sum(stat(rs, "replicas") for rs in owned)
        available = sum(stat(rs, "availableReplicas") for rs in owned)
        updated = stat(new, "replicas") if new else 0
        status = {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": sum(stat(rs, "readyReplicas") for rs in owned),
            "availableReplicas": available,
            "unavailableReplicas": max(0, sum(rs["spec"].get("replicas", 0) for rs in owned) - available),
        }
        conds = copy.deepcopy((dep.get("status") or {}).get("conditions") or [])
        max_unavailable = _resolve(spec, "maxUnavailable", desired, up=False)
        if available >= desired - max_unavailable:
            set_condition(
                conds,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                update_time=True,
            )
        else:
            set_condition(
                conds,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                update_time=True,
            )
        rs_name = new["metadata"]["name"] if new else ""
        complete = new is not None and updated == desired and replicas == desired and available == desired
        progressing = condition({"status": {"conditions": conds}}, "Progressing")
        if spec.get("paused"):
            set_condition(conds, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", update_time=True)
        elif complete:
            set_condition(
                conds,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                update_time=True,
            )
        elif progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            pass
        elif progressing and time.time() - parse_time(progressing["lastUpdateTime"]) > spec.get(
            "progressDeadlineSeconds", 600
        ):
            set_condition(
                conds,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                update_time=True,
            )
        elif progressing is None:
            set_condition(
                conds,
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                f'Created new replica set "{rs_name}"',
                update_time=True,
            )
        elif (progressing.get("reason"), progressing.get("status")) != ("ReplicaSetUpdated", "True") or updated != (
            dep.get("status") or {}
        ).get("updatedReplicas"):
            set_condition(
                conds,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
                update_time=True,
            )
        status = _omit_zero(status)
        status["conditions"] = conds
        self.write_status("deployments", dep, status)

    def replicasets(self) -> None:
        for rs in self.all("replicasets"):
            meta, spec = rs["metadata"], rs["spec"]
            if meta.get("deletionTimestamp"):
                continue
            pods = [p for p in self.owned_pods(rs) if active(p)]
            missing = spec.get("replicas", 1) - len(pods)
            for _i in range(missing):
                pods.append(self.create("pods", meta["namespace"], self.pod_from_template(rs, spec["template"])))
            if missing < 0:
                ranked = sorted(
                    pods,
                    key=lambda p: (
                        bool(p["spec"].get("nodeName")),
                        is_true(p, "Ready"),
                        -int(p["metadata"]["resourceVersion"]),
                    ),
                )
                for pod in ranked[:-missing]:
                    self.delete("pods", pod)
                    pods.remove(pod)
            min_ready = spec.get("minReadySeconds", 0)
            status = {
                "replicas": len(pods),
                "fullyLabeledReplicas": len(pods),
                "readyReplicas": sum(is_true(p, "Ready") for p in pods),
                "availableReplicas": sum(self.available(p, min_ready) for p in pods),
                "observedGeneration": meta["generation"],
            }
            self.write_status("replicasets", rs, _omit_zero(status, keep=("replicas",)))

    def statefulsets(self) -> None:
        for sts in self.all("statefulsets"):
            meta, spec = sts["metadata"], sts["spec"]
            if meta.get("deletionTimestamp"):
                continue
            name, desired = meta["name"], spec.get("replicas", 1)
            revision = f"{name}-{short_hash(spec['template'])}"
            pods = {p["metadata"]["name"]: p for p in self.owned_pods(sts) if active(p)}
            ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
            for i in range(desired):
                pod_name = f"{name}-{i}"
                if pod_name not in pods:
                    pods[pod_name] = self._statefulset_pod(sts, i, revision)
                    if ordered:
                        break
                elif ordered and not is_true(pods[pod_name], "Ready"):
                    break
            extra = sorted(
                (p for p in pods if int(p.rsplit("-", 1)[1]) >= desired), key=lambda p: -int(p.rsplit("-", 1)[1])
            )
            for pod_name in extra[: 1 if ordered else None]:
                self.delete("pods", pods.pop(pod_name))
            strategy = spec.get("updateStrategy", {})
            partition = (strategy.get("rollingUpdate") or {}).get("partition", 0)
            in_range = [pods.get(f"{name}-{i}") for i in range(desired)]
            if strategy.get("type") == "RollingUpdate" and all(p and is_true(p, "Ready") for p in in_range):
                stale = [
                    p
                    for i, p in enumerate(in_range)
                    if i >= partition and p["metadata"]["labels"].get("controller-revision-hash") != revision
                ]
                if stale:
                    self.delete("pods", stale[-1])
                    pods.pop(stale[-1]["metadata"]["name"])
            old = sts.get("status") or {}
            current = old.get("currentRevision") or revision
            updated = sum(p["metadata"]["labels"].get("controller-revision-hash") == revision for p in pods.values())
            if updated == desired == len(pods):
                current = revision
            ready = sum(is_true(p, "Ready") for p in pods.values())
            status = {
                "observedGeneration": meta["generation"],
                "replicas": len(pods),
                "readyReplicas": ready,
                "currentReplicas": sum(
                    p["metadata"]["labels"].get("controller-revision-hash") == current for p in pods.values()
                ),
                "updatedReplicas": updated,
                "currentRevision": current,
                "updateRevision": revision,
                "availableReplicas": sum(self.available(p, spec.get("minReadySeconds", 0)) for p in pods.values()),
                "collisionCount": 0,
            }
            self.write_status("statefulsets", sts, _omit_zero(status, keep=("replicas", "collisionCount")))

    def _statefulset_pod(self, sts: dict, i: int, revision: str) -> dict:
        meta, spec = sts["metadata"], sts["spec"]
        pod_name = f"{meta['name']}-{i}"
        pod = self.pod_from_template(sts, spec["template"], name=pod_name)
        labels = pod["metadata"].setdefault("labels", {})
        labels.update(
            {
                "statefulset.kubernetes.io/pod-name": pod_name,
                "controller-revision-hash": revision,
                "apps.kubernetes.io/pod-index": str(i),
            }
        )
        pod["spec"]["hostname"] = pod_name
        if spec.get("serviceName"):
            pod["spec"]["subdomain"] = spec["serviceName"]
        volumes = pod["spec"].setdefault("volumes", [])
        for claim in spec.get("volumeClaimTemplates") or []:
            claim_name = f"{claim['metadata']['name']}-{pod_name}"
            if self.store.find(self.r["persistentvolumeclaims"].key, meta["namespace"], claim_name) is None:
                body = {
                    "metadata": {
                        "name": claim_name,
                        "labels": {
                            **(spec["selector"].get("matchLabels") or {}),
                            **(claim["metadata"].get("labels") or {}),
                        },
                    },
                    "spec": copy.deepcopy(claim.get("spec") or {}),
                }
                self.create("persistentvolumeclaims", meta["namespace"], body)
            volumes[:] = [v for v in volumes if v.get("name") != claim["metadata"]["name"]]
            volumes.append({"name": claim["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_name}})
        return self.create("pods", meta["namespace"], pod)

    def daemonsets(self) -> None:
        nodes = [n for n in self.all("nodes") if is_true(n, "Ready") and not n.get("spec", {}).get("unschedulable")]
        for ds in self.all("daemonsets"):
            meta, spec = ds["metadata"], ds["spec"]
            if meta.get("deletionTimestamp"):
                continue
            template_hash = short_hash(spec["template"])
            wanted = [
                n
                for n in nodes
                if all(
                    (n["metadata"].get("labels") or {}).get(k) == v
                    for k, v in (spec["template"]["spec"].get("nodeSelector") or {}).items()
                )
            ]
            pods = [p for p in self.owned_pods(ds) if active(p)]
            by_node = {p["spec"].get("nodeName"): p for p in pods}
            for node in wanted:
                node_name = node["metadata"]["name"]
                pod = by_node.get(node_name)
                if pod is not None and pod["metadata"]["labels"].get("controller-revision-hash") != template_hash:
                    self.delete("pods", pod)
                    pods.remove(pod)
                    pod = None
                if pod is None:
                    body = self.pod_from_template(ds, spec["template"])
                    body["metadata"].setdefault("labels", {})["controller-revision-hash"] = template_hash
                    body["spec"]["nodeName"] = node_name
                    pods.append(self.create("pods", meta["namespace"], body))
            names = {n["metadata"]["name"] for n in wanted}
            for pod in list(pods):
                if pod["spec"].get("nodeName") not in names:
                    self.delete("pods", pod)
                    pods.remove(pod)
            ready = sum(is_true(p, "Ready") for p in pods)
            status = {
                "currentNumberScheduled": len(pods),
                "numberMisscheduled": 0,
                "desiredNumberScheduled": len(wanted),
                "numberReady": ready,
                "observedGeneration": meta["generation"],
                "updatedNumberScheduled": len(pods),
                "numberAvailable": ready,
                "numberUnavailable": len(wanted) - ready,
            }
            self.write_status(
                "daemonsets",
                ds,
                _omit_zero(
                    status,
                    keep=("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"),
                ),
            )

    def jobs(self) -> None:
        for job in self.all("jobs"):
            meta, spec = job["metadata"], job["spec"]
            status = copy.deepcopy(job.get("status") or {})
            if meta.get("deletionTimestamp"):
                continue
            finished = next(
                (
                    c
                    for c in status.get("conditions") or []
                    if c["type"] in ("Complete", "Failed") and c["status"] == "True"
                ),
                None,
            )
            if finished:
                ttl = spec.get("ttlSecondsAfterFinished")
                if ttl is not None and time.time() - parse_time(finished["lastTransitionTime"]) >= ttl:
                    self.delete("jobs", job, propagation="Background")
                continue
            pods = self.owned_pods(job)
            counted = self._counted.setdefault(meta["uid"], {"Succeeded": set(), "Failed": set()})
            for pod in pods:
                phase = pod["status"].get("phase")
                if phase in counted:
                    counted[phase].add(pod["metadata"]["uid"])
            running = [p for p in pods if active(p)]
            conds = status.setdefault("conditions", [])
            succeeded, failed = len(counted["Succeeded"]), len(counted["Failed"])
            completions, parallelism = spec.get("completions"), spec.get("parallelism", 1)
            if spec.get("suspend"):
                for pod in running:
                    self.delete("pods", pod)
                running = []
                set_condition(conds, "Suspended", "True", "JobSuspended", "Job suspended")
            else:
                if is_true(job, "Suspended"):
                    set_condition(conds, "Suspended", "False", "JobResumed", "Job resumed")
                status.setdefault("startTime", now())
            failure = None
            if failed > spec.get("backoffLimit", 6):
                failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            deadline = spec.get("activeDeadlineSeconds")
            if (
                deadline is not None
                and "startTime" in status
                and time.time() - parse_time(status["startTime"]) >= deadline
            ):
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
            done = (succeeded >= completions) if completions is not None else (succeeded > 0 and not running)
            if failure:
                for pod in running:
                    self.delete("pods", pod)
                running = []
                set_condition(conds, "FailureTarget", "True", *failure)
                set_condition(conds, "Failed", "True", *failure)
            elif done:
                for pod in running:
                    self.delete("pods", pod)
                running = []
                message = "Reached expected number of succeeded pods"
                set_condition(conds, "SuccessCriteriaMet", "True", "CompletionsReached", message)
                set_condition(conds, "Complete", "True", "CompletionsReached", message)
                status["completionTime"] = now()
            elif not spec.get("suspend"):
                remaining = (completions - succeeded) if completions is not None else parallelism
                for _i in range(min(parallelism, remaining) - len(running)):
                    running.append(
                        self.create("pods", meta["namespace"], self.pod_from_template(job, spec["template"]))
                    )
            for cond in conds:
                cond.setdefault("lastProbeTime", cond["lastTransitionTime"])
            status.update(
                {
                    "active": len(running),
                    "succeeded": succeeded,
                    "failed": failed,
                    "ready": sum(is_true(p, "Ready") for p in running),
                    "terminating": 0,
                    "uncountedTerminatedPods": {},
                }
            )
            status = _omit_zero(status, keep=("ready", "terminating", "uncountedTerminatedPods"))
            if not status.get("conditions"):
                status.pop("conditions", None)
            self.write_status("jobs", job, status)


def _resolve(spec: dict, key: str, desired: int, up: bool) -> int:
    """maxSurge / maxUnavailable of a RollingUpdate strategy as a pod count."""
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0 if up else desired
    value = (strategy.get("rollingUpdate") or {}).get(key, "25%")
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * desired / 100
        return int(-(-exact // 1)) if up else int(exact)
    return int(value)


def _node_terms_match(selector: dict, node: dict) -> bool:
    """A NodeSelector: any term matches when all its expressions (labels and fields) match."""
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}

    def expr_ok(expr: dict, values: dict) -> bool:
        key, op, vals = expr["key"], expr["operator"], expr.get("values") or []
        present = key in values
        if op == "In":
            return present and values[key] in vals
        if op == "NotIn":
            return not present or values[key] not in vals
        if op == "Exists":
            return present
        if op == "DoesNotExist":
            return not present
        if op in ("Gt", "Lt") and present:
            a, b = int(values[key]), int(vals[0])
            return a > b if op == "Gt" else a < b
        return False

    return any(
        all(expr_ok(e, labels) for e in term.get("matchExpressions") or [])
        and all(expr_ok(e, fields) for e in term.get("matchFields") or [])
        for term in selector.get("nodeSelectorTerms") or []
    )


def _tolerated(taint: dict, tolerations: list[dict]) -> bool:
    if taint.get("effect") == "PreferNoSchedule":
        return True
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists" and (not tol.get("key") or tol["key"] == taint.get("key")):
            return True
        if tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False
