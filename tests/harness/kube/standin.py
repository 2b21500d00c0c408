"""A Kubernetes API stand-in for machines where no control plane can run.

    from tests.harness.kube import standin
    with standin.running(tmp_path) as api:
        kubernetes.config.load_kube_config(str(api.kubeconfig))

    python -m tests.harness.kube.standin --kubeconfig /tmp/standin.kubeconfig

Plain HTTP on 127.0.0.1, bearer-token auth (a read-only token provokes 403), discovery,
the REST verbs with real `Status` errors, watch, dry-run, subresources, and the
controllers of `controllers.py`. See docs/testing-cluster-standin.md for what it is not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from .apiserver import LOG_ANNOTATION, ApiError, Store, now, status_body
from .catalog import Catalog, Resource
from .controllers import ControllerManager
from .patching import PatchError, json_patch, merge_patch

log = logging.getLogger(__name__)
CONTEXT = "standin"
_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


@cache
def catalog(version: str | None = None) -> Catalog:
    return Catalog(version)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, addr, standin: StandIn):
        self.standin = standin
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def drop_connections(self) -> None:
        with self.conn_lock:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)

    def log_message(self, fmt, *args) -> None:  # quiet unless asked
        log.debug("%s " + fmt, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # -- plumbing ------------------------------------------------------------------------

    def _send(self, code: int, body, content_type: str = "application/json", warnings=()) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for text in warnings:
            self.send_header("Warning", '299 - "{}"'.format(text.replace('"', "'")))
        self.end_headers()
        self.wfile.write(data)

    def _body(self, content_type: str):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            if content_type == "application/apply-patch+yaml":
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, "BadRequest", f"error decoding request body: {exc}") from exc

    def _dispatch(self, method: str) -> None:
        standin = self.server.standin
        store = standin.store
        try:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            user = standin.authenticate(self.headers.get("Authorization", ""))
            content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
            body = self._body(content_type) if method in ("POST", "PUT", "PATCH", "DELETE") else None
            store.take_warnings()
            code, out = self._route(method, url.path.rstrip("/") or "/", query, body, content_type, user)
            if isinstance(out, Iterator):
                self._stream(out)
            elif isinstance(out, str):
                self._send(code, out, "text/plain", store.take_warnings())
            else:
                self._send(code, out, warnings=store.take_warnings())
        except ApiError as exc:
            self._send(exc.code, exc.body())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # an internal error is a 500 with a Status, as the real API does
            log.exception("stand-in failed on %s %s", method, self.path)
            self._send(500, status_body(500, "InternalError", f"Internal error occurred: {exc}"))

    def _stream(self, events: Iterator) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for etype, obj in events:
                data = json.dumps({"type": etype, "object": obj}).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
        finally:
            close = getattr(events, "close", None)
            if close:
                close()

    # -- routes --------------------------------------------------------------------------

    def _route(self, method, path, query, body, content_type, user):
        standin = self.server.standin
        cat = standin.catalog
        parts = path.strip("/").split("/")
        if method == "GET":
            if path == "/version":
                return 200, standin.version_info()
            if path in ("/healthz", "/livez", "/readyz"):
                return 200, "ok"
            if path == "/api":
                return 200, {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": standin.address}],
                }
            if path == "/apis":
                groups = [standin.api_group(g) for g in cat.group_versions() if g]
                return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
            if parts[0] == "apis" and len(parts) == 2 and parts[1] in cat.group_versions():
                return 200, {"kind": "APIGroup", "apiVersion": "v1", **standin.api_group(parts[1])}
            if (parts[0] == "api" and len(parts) == 2) or (parts[0] == "apis" and len(parts) == 3):
                group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
                resources = cat.in_group_version(group, version)
                if resources:
                    listed = [entry for r in resources for entry in r.discovery()]
                    gv = f"{group}/{version}" if group else version
                    return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": listed}
        if parts[0] == "api" and len(parts) >= 3:
            return self._resource(method, "", parts[1], parts[2:], query, body, content_type, user)
        if parts[0] == "apis" and len(parts) >= 4:
            return self._resource(method, parts[1], parts[2], parts[3:], query, body, content_type, user)
        raise _no_route()

    def _resource(self, method, group, version, segs, query, body, content_type, user):
        standin = self.server.standin
        store, cat = standin.store, standin.catalog
        namespace = None
        if (
            segs[0] == "namespaces"
            and len(segs) >= 3
            and cat.get(group, version, segs[2])
            and cat.get(group, version, segs[2]).namespaced
        ):
            namespace, segs = segs[1], segs[2:]
        res = cat.get(group, version, segs[0])
        if res is None or len(segs) > 3:
            raise _no_route()
        name = segs[1] if len(segs) > 1 else None
        sub = segs[2] if len(segs) > 2 else None
        if sub is not None and sub not in res.subresources:
            raise _no_route()
        verb = _verb(method, name, query)
        allowed = res.subresources[sub] if sub else res.verbs
        if verb not in allowed:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                {"name": name or "", "group": group, "kind": res.plural} if name else None,
            )
        standin.authorize(user, verb, res, namespace)
        dry_run = _dry_run(query, body)
        validation = query.get("fieldValidation", "Strict")
        ns = namespace or ""
        if verb == "list":
            return 200, store.list(res, namespace, query.get("labelSelector"), query.get("fieldSelector"))
        if verb == "watch":
            timeout = float(query.get("timeoutSeconds") or 1800)
            return 200, store.watch(
                res,
                namespace,
                query.get("resourceVersion"),
                query.get("labelSelector"),
                query.get("fieldSelector"),
                timeout,
            )
        if sub == "scale":
            return 200, standin.scale(res, ns, name, verb, body, content_type, dry_run)
        if verb == "get":
            if sub == "log":
                return 200, standin.pod_log(res, ns, name, query)
            return 200, store.get(res, ns, name)
        if verb == "create":
            if sub == "binding":
                return 201, standin.bind(res, ns, name, body or {}, dry_run)
            _need_body(body)
            return 201, store.create(res, ns, body, dry_run=dry_run, field_validation=validation)
        if verb == "update":
            _need_body(body)
            return 200, store.update(res, ns, name, body, subresource=sub, dry_run=dry_run, field_validation=validation)
        if verb == "patch":
            patch_type = _PATCH_TYPES.get(content_type)
            if patch_type is None:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - "
                    f"accepted media types include: {', '.join(_PATCH_TYPES)}",
                )
            if patch_type == "apply" and not query.get("fieldManager"):
                raise ApiError(
                    422,
                    "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                )
            if not (patch_type == "json" and isinstance(body, list)):
                _need_body(body)
            with store.lock:
                existed = store.find(res.key, ns if res.namespaced else "", name) is not None
                out = store.patch(
                    res, ns, name, patch_type, body, subresource=sub, dry_run=dry_run, field_validation=validation
                )
            return (200 if existed else 201), out
        options = body or {}
        propagation = query.get("propagationPolicy") or options.get("propagationPolicy")
        orphan = query.get("orphanDependents", options.get("orphanDependents"))
        if propagation is None and orphan is not None:
            propagation = "Orphan" if str(orphan).lower() == "true" else "Background"
        if verb == "delete":
            obj, gone = store.delete(
                res, ns, name, propagation=propagation, dry_run=dry_run, preconditions=options.get("preconditions")
            )
            if not gone or res.delete_returns_object:
                return 200, obj
            details = {"name": name, "group": group, "kind": res.plural, "uid": obj["metadata"]["uid"]}
            return 200, status_body(200, "", "", {k: v for k, v in details.items() if v}, ok=True)
        # deletecollection
        listed = store.list(res, namespace, query.get("labelSelector"), query.get("fieldSelector"))
        deleted = []
        for item in listed["items"]:
            meta = item["metadata"]
            with contextlib.suppress(ApiError):
                deleted.append(
                    store.delete(
                        res, meta.get("namespace", ""), meta["name"], propagation=propagation, dry_run=dry_run
                    )[0]
                )
        return 200, {**listed, "items": deleted}


def _verb(method: str, name: str | None, query: dict) -> str:
    if method == "GET":
        if name is None:
            return "watch" if query.get("watch") in ("true", "1") else "list"
        return "get"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}[method]


def _dry_run(query: dict, body) -> bool:
    value = query.get("dryRun")
    if value is None and isinstance(body, dict) and body.get("kind") == "DeleteOptions":
        value = (body.get("dryRun") or [None])[0]
    if value not in (None, "", "All"):
        raise ApiError(400, "BadRequest", f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return value == "All"


def _need_body(body) -> None:
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the request body must be an object")


def _no_route() -> ApiError:
    return ApiError(
        404,
        "NotFound",
        "the server could not find the requested resource",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]},
    )


class StandIn:
    """One running stand-in: server thread, controller thread, kubeconfig."""

    def __init__(self, workdir: Path, *, version: str | None = None, auth: bool = True, port: int = 0):
        self.workdir = Path(workdir)
        self.catalog = catalog(version)
        self.store = Store(self.catalog)
        self.controllers = ControllerManager(self.store)
        self.auth = auth
        self.token = secrets.token_urlsafe(24)
        self.readonly_token = secrets.token_urlsafe(24)
        self._httpd = _Server(("127.0.0.1", port), self)
        self.address = f"127.0.0.1:{self._httpd.server_address[1]}"
        self.url = f"http://{self.address}"
        self.kubeconfig = self.workdir / "standin.kubeconfig"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="standin-http", daemon=True
        )
        self._stopped = False

    def start(self) -> StandIn:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_kubeconfig(self.kubeconfig)
        self.controllers.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.controllers.stop()  # also closes the store: watches end
        self._httpd.shutdown()
        self._httpd.drop_connections()
        self._httpd.server_close()  # joins the request threads
        self._thread.join(timeout=10)

    def write_kubeconfig(self, path: Path) -> None:
        user = {"token": self.token} if self.auth else {}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT, "cluster": {"server": self.url}}],
            "users": [{"name": CONTEXT, "user": user}],
            "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}],
            "current-context": CONTEXT,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(config, handle)

    # -- identity ------------------------------------------------------------------------

    def authenticate(self, header: str) -> str:
        if not self.auth:
            return "admin"
        token = header[7:].strip() if header.startswith("Bearer ") else ""
        if token and secrets.compare_digest(token, self.token):
            return "admin"
        if token and secrets.compare_digest(token, self.readonly_token):
            return "readonly"
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def authorize(self, user: str, verb: str, res: Resource, namespace: str | None) -> None:
        if user == "readonly" and verb not in ("get", "list", "watch"):
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            raise ApiError(
                403,
                "Forbidden",
                f'{res.qualified} is forbidden: User "system:serviceaccount:standin:readonly" cannot {verb} '
                f'resource "{res.plural}" in API group "{res.group}"{where}',
                {"group": res.group, "kind": res.plural} if res.group else {"kind": res.plural},
            )

    # -- discovery -----------------------------------------------------------------------

    def version_info(self) -> dict:
        major, minor = self.catalog.version.split(".")[:2]
        return {
            "major": major,
            "minor": minor,
            "gitVersion": f"v{self.catalog.version}",
            "gitCommit": "standin",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "n/a",
            "compiler": "standin",
            "platform": "linux/amd64",
        }

    def api_group(self, group: str) -> dict:
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in self.catalog.group_versions()[group]]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    # -- pods: binding and logs ----------------------------------------------------------

    def bind(self, res: Resource, namespace: str, name: str, body: dict, dry_run: bool) -> dict:
        target = (body.get("target") or {}).get("name")
        if not target:
            raise ApiError(400, "BadRequest", "binding target is required")
        store = self.store
        with store.lock:
            pod = store.get(res, namespace, name)
            if pod["spec"].get("nodeName"):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on pods/binding "{name}": '
                    f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"',
                )
            if not dry_run:
                pod["spec"]["nodeName"] = target
                conds = [c for c in pod["status"].get("conditions") or [] if c["type"] != "PodScheduled"]
                conds.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": now()})
                pod["status"]["conditions"] = conds
                store.update(res, namespace, name, pod, internal=True)
        return status_body(201, "", "", ok=True)

    def scale(self, res: Resource, namespace: str, name: str, verb: str, body, content_type: str, dry_run: bool):
        """The `scale` subresource: an autoscaling/v1 Scale over spec.replicas."""
        store = self.store
        with store.lock:
            obj = store.get(res, namespace, name)
            current = self._scale_of(obj)
            if verb == "get":
                return current
            if verb == "patch":  # a Scale has no lists: strategic merge is a merge patch here
                try:
                    if _PATCH_TYPES.get(content_type) == "json":
                        wanted = json_patch(current, body)
                    else:
                        wanted = merge_patch(current, body)
                except PatchError as exc:
                    raise ApiError(422, "Invalid", str(exc)) from exc
            else:
                wanted = body or {}
            replicas = (wanted.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(
                    422,
                    "Invalid",
                    f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                    f"{replicas}: must be greater than or equal to 0",
                )
            obj["spec"]["replicas"] = replicas
            updated = store.update(res, namespace, name, obj, dry_run=dry_run)
            return self._scale_of(updated)

    @staticmethod
    def _scale_of(obj: dict) -> dict:
        meta = obj["metadata"]
        selector = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
            },
            "spec": {"replicas": obj["spec"].get("replicas", 0)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
            },
        }

    def pod_log(self, res: Resource, namespace: str, name: str, query: dict) -> str:
        pod = self.store.get(res, namespace, name)
        containers = [c["name"] for c in pod["spec"].get("initContainers", []) + pod["spec"].get("containers", [])]
        container = query.get("container")
        if not container:
            main = [c["name"] for c in pod["spec"].get("containers", [])]
            if len(main) != 1:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: [{' '.join(main)}]",
                )
            container = main[0]
        if container not in containers:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        if not pod["spec"].get("nodeName"):
            raise ApiError(400, "BadRequest", f"pod {name} does not have a host assigned")
        statuses = pod["status"].get("initContainerStatuses", []) + pod["status"].get("containerStatuses", [])
        state = next((s for s in statuses if s.get("name") == container), {})
        started = any(k in (state.get("state") or {}) for k in ("running", "terminated")) or "terminated" in (
            state.get("lastState") or {}
        )
        if query.get("previous") in ("true", "True", "1") and "terminated" not in (state.get("lastState") or {}):
            raise ApiError(400, "BadRequest", f'previous terminated container "{container}" in pod "{name}" not found')
        if not started:
            reason = ((state.get("state") or {}).get("waiting") or {}).get("reason", "ContainerCreating")
            raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        annotations = pod["metadata"].get("annotations") or {}
        text = annotations.get(f"{LOG_ANNOTATION}.{container}", annotations.get(LOG_ANNOTATION, ""))
        if query.get("tailLines"):
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(query["tailLines"]) :]) if int(query["tailLines"]) else ""
        if query.get("limitBytes"):
            text = text.encode()[: int(query["limitBytes"])].decode(errors="ignore")
        return text


@contextlib.contextmanager
def running(workdir: Path, **options) -> Iterator[StandIn]:
    """Start a stand-in, yield it (`.kubeconfig`, `.url`, `.stop()`), stop it."""
    standin = StandIn(workdir, **options).start()
    try:
        yield standin
    finally:
        standin.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, type=Path, help="where to write the kubeconfig (mode 0600)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--kube-version", default=None, help="Kubernetes minor whose schemas are served")
    parser.add_argument("--no-auth", action="store_true", help="accept requests without a token")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    standin = StandIn(args.kubeconfig.parent, version=args.kube_version, auth=not args.no_auth, port=args.port)
    standin.kubeconfig = args.kubeconfig
    standin.start()
    print(f"stand-in serving {standin.url}, kubeconfig {args.kubeconfig} (context {CONTEXT})", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
