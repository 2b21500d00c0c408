"""Per-worker admission gate for MLflow's tracking server (the mlflow_server role's ConfigMap).

``mlflow server --app-name admission-gate`` (or ``admission-gate-basic-auth``) finds this module
through the ``mlflow.app`` entry point of the dist-info next to it (both mounted from one
ConfigMap on a directory in ``PYTHONPATH``); the factory wraps MLflow's own ASGI app
(``mlflow.server.fastapi_app:app``, or basic auth's ``mlflow.server.auth:create_app()``) in
:class:`AdmissionGate`, once in each uvicorn worker.

The gate lets at most ``MLFLOW_K8S_ADMISSION_CONCURRENCY`` (K) API requests into MLflow at once
in this worker. A request beyond that waits in the event loop (no thread) for a free slot, first
come first served, at most ``MLFLOW_K8S_ADMISSION_QUEUE_SECONDS`` (W); past W it is answered at
once with ``503``, ``Retry-After: <seconds>`` and MLflow's JSON error body
(``TEMPORARILY_UNAVAILABLE``), which MLflow's client retries after that many seconds. The
health, version and metrics endpoints and the UI's static files are never held.

A request that was shed comes back on the same connection (MLflow's client retries through
urllib3 on its pooled keep-alive connection): the gate remembers when that connection's call
first arrived and queues its retry by that time, ahead of newer calls. So the queue is first
come first served by the call, not by the attempt, and a call does not lose the draw attempt
after attempt until its retries run out. The connection must outlive the client's sleep:
Retry-After stays below ``MLFLOW_K8S_ADMISSION_KEEP_ALIVE_SECONDS``, uvicorn's
``--timeout-keep-alive`` as the role renders it from the same variable.

The workers of one server share their listening socket, and whichever accepts first keeps a
client's keep-alive connection for good: eight clients can all end up on one worker while the
other idles. So each worker counts the client connections it serves (the distinct client
addresses of its API requests in the last CONNECTION_IDLE_SECONDS, and those whose shed call
will come back: :meth:`AdmissionGate.load`) and publishes the count in a slot of a small shared
file (:class:`LoadBoard`); a worker holding two connections more than the worker with the fewest
answers with ``Connection: close``, and the client's next request opens a new connection, which
the idler worker, waiting in accept, is the first to take
(``MLFLOW_K8S_ADMISSION_BALANCE=false`` turns this off). Connections, not requests in flight:
they are what stays put, and counting them does not flap with every short request.

Each worker sets the interpreter's thread switch interval from
``MLFLOW_K8S_ADMISSION_SWITCH_INTERVAL`` (SWITCH_INTERVAL_DEFAULT, Python's own, when unset).
Unless ``MLFLOW_K8S_ADMISSION_GC_FREEZE=false``, it moves every object alive once MLflow's app is
loaded (the modules, the app, the routes) out of the cyclic garbage collector's reach
(``gc.freeze``): a full collection then scans what the requests allocated, not all of MLflow.

Only the standard library at import time: ``mlflow server`` imports this module in its own
process to see that the entry point is a factory, before any worker exists.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import gc
import heapq
import json
import math
import mmap
import os
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONCURRENCY_ENV = "MLFLOW_K8S_ADMISSION_CONCURRENCY"
QUEUE_SECONDS_ENV = "MLFLOW_K8S_ADMISSION_QUEUE_SECONDS"
BALANCE_ENV = "MLFLOW_K8S_ADMISSION_BALANCE"
SWITCH_INTERVAL_ENV = "MLFLOW_K8S_ADMISSION_SWITCH_INTERVAL"
KEEP_ALIVE_ENV = "MLFLOW_K8S_ADMISSION_KEEP_ALIVE_SECONDS"
GC_FREEZE_ENV = "MLFLOW_K8S_ADMISSION_GC_FREEZE"
# uvicorn's own --timeout-keep-alive; the role renders 75 (nginx's keepalive_timeout).
KEEP_ALIVE_DEFAULT = 5.0
# How long a thread may hold the GIL while another waits for it (sys.setswitchinterval): Python's
# own 5 ms. Half a millisecond lets a request thread back from the database in sooner, and once
# looked better at 8 clients, but side by side at 32 log-batch clients on MariaDB it served 0.64x
# the defaults' requests against 1.05x with 5 ms: on a busy machine every forced GIL hand-over
# also waits for the scheduler to run the next thread (docs/mlflow_server.md).
SWITCH_INTERVAL_DEFAULT = 0.005
# What `mlflow server --static-prefix` hands its workers (mlflow.server.handlers.STATIC_PREFIX_ENV_VAR).
STATIC_PREFIX_ENV = "_MLFLOW_STATIC_PREFIX"

# anyio's default thread limiter: the most Flask requests one worker runs at once.
MAX_CONCURRENCY = 40
MAX_QUEUE_SECONDS = 60.0
# Retry-After bounds: 0 would make urllib3 fall back to its own backoff (it sleeps only on a
# non-zero value); past a minute a client learns nothing new by sleeping longer.
RETRY_AFTER_MIN = 1
RETRY_AFTER_MAX = 60
# The service time assumed before the first request of this worker has finished.
INITIAL_SERVICE_SECONDS = 1.0
SERVICE_TIME_WEIGHT = 0.2
# A shed request's body is read (and dropped) up to this size and for at most the queue time, so
# the client, still sending, reads the 503 instead of a reset connection; a larger or slower
# upload gets the 503 and a closed connection.
DRAIN_LIMIT = 8 * 1024 * 1024

# Never held: probes, the version, Prometheus (registered without the prefix) and the UI.
EXEMPT_PATHS = frozenset({"/", "/health", "/version", "/metrics"})
EXEMPT_PREFIXES = ("/static-files/",)


# A client address not seen for this long no longer counts as load on this worker (uvicorn's
# default keep-alive timeout; a client quiet that long, even on an open connection, is not busy).
CONNECTION_IDLE_SECONDS = 5.0

# The load board: one slot (pid, load) per worker, claimed with a lock on its bytes that the
# kernel drops when the worker dies; which slots are alive is looked up again every second.
BOARD_SLOTS = 64
BOARD_SLOT = struct.Struct("=qq")
BOARD_REFRESH_SECONDS = 1.0


class LoadBoard:
    """How many connections each worker of one server serves, in a file all of them map (``path``).

    Each worker claims a free slot (an exclusive ``lockf`` on its bytes, held while the worker
    lives) and writes its count there; :meth:`others` reads the slots whose lock another living
    process holds. Plain memory reads and writes on each request; a lock probe per slot once a
    second.
    """

    def __init__(self, path: str, slots: int = BOARD_SLOTS, clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = slots
        self.clock = clock
        size = slots * BOARD_SLOT.size
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(self.fd).st_size < size:
                os.ftruncate(self.fd, size)
            self.map = mmap.mmap(self.fd, size)
            self.slot = self._claim()
        except BaseException:
            os.close(self.fd)
            raise
        self.pid = os.getpid()
        self.live: list[int] = []
        self.checked = float("-inf")
        self.publish(0)

    def _lock(self, slot: int, how: int) -> bool:
        try:
            fcntl.lockf(self.fd, how, BOARD_SLOT.size, slot * BOARD_SLOT.size)
        except OSError:
            return False
        return True

    def _claim(self) -> int:
        for slot in range(self.slots):
            if self._lock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB):
                return slot
        raise OSError(f"all {self.slots} slots of the load board are taken")

    def publish(self, load: int) -> None:
        BOARD_SLOT.pack_into(self.map, self.slot * BOARD_SLOT.size, self.pid, load)

    def others(self) -> list[int]:
        """The loads of the other living workers."""
        now = self.clock()
        if now - self.checked >= BOARD_REFRESH_SECONDS:
            self.checked = now
            live = []
            for slot in range(self.slots):
                if slot == self.slot:
                    continue
                if self._lock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB):  # nobody holds it: free
                    self._lock(slot, fcntl.LOCK_UN)
                else:
                    live.append(slot)
            self.live = live
        return [BOARD_SLOT.unpack_from(self.map, slot * BOARD_SLOT.size)[1] for slot in self.live]

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.map.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


def board_path() -> str:
    """The load board's file: in the temporary directory, named after the uvicorn supervisor
    (the workers' parent), so the workers of one server share it and two servers do not."""
    return os.path.join(tempfile.gettempdir(), f"mlflow-k8s-admission-{os.getppid()}.load")


def overloaded(mine: int, others: list[int]) -> bool:
    """Whether a worker with ``mine`` connections should let one go: another worker has at
    least two fewer (with one fewer, moving one would just swap the imbalance)."""
    return bool(others) and mine > min(others) + 1


def is_gated(path: str, static_prefix: str = "") -> bool:
    """Whether a request for ``path`` passes through the gate: everything but the exempt paths,
    below ``static_prefix`` when the server has one."""
    prefix = static_prefix.rstrip("/")
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        path = path[len(prefix) :] or "/"
    return path not in EXEMPT_PATHS and not path.startswith(EXEMPT_PREFIXES)


def retry_after(ahead: int, concurrency: int, service_seconds: float, longest: int = RETRY_AFTER_MAX) -> int:
    """Seconds a shed request should wait before it comes back: the time this worker needs, at
    its current pace (``concurrency`` slots, ``service_seconds`` a request), to serve the
    ``ahead`` requests before it (queued, and shed earlier and not back yet) and this one,
    rounded up and clamped to [RETRY_AFTER_MIN, ``longest``] (RETRY_AFTER_MAX, or less so the
    client's connection outlives its sleep). It grows with the load, so clients come back about
    when there is room and do not spend their retries."""
    seconds = (max(ahead, 0) + 1) * max(service_seconds, 0.0) / max(concurrency, 1)
    return min(max(longest, RETRY_AFTER_MIN), max(RETRY_AFTER_MIN, math.ceil(seconds)))


def longest_retry_after(keep_alive_seconds: float) -> int:
    """The longest Retry-After for a server that closes idle connections after
    ``keep_alive_seconds``: a second less, so the client still finds its connection (and its
    place in the queue) when it comes back; at most RETRY_AFTER_MAX."""
    return max(RETRY_AFTER_MIN, min(RETRY_AFTER_MAX, math.ceil(keep_alive_seconds) - 1))


def _seconds(environ: MutableMapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A number of seconds from ``environ[name]`` (``default`` when unset), within [low, high]."""
    try:
        value = float(environ.get(name, str(default)))
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={value:g}: must be {low:g}..{high:g} s")
    return value


def settings_from_env(environ: MutableMapping[str, str] | None = None) -> dict[str, Any]:
    """K, W and the static prefix from the environment the role renders; a clear error otherwise."""
    environ = os.environ if environ is None else environ
    try:
        concurrency = int(environ.get(CONCURRENCY_ENV, "8"))
        queue_seconds = float(environ.get(QUEUE_SECONDS_ENV, "2"))
    except ValueError as exc:
        raise ValueError(f"{CONCURRENCY_ENV} must be an integer and {QUEUE_SECONDS_ENV} a number: {exc}") from None
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"{CONCURRENCY_ENV}={concurrency}: must be 1..{MAX_CONCURRENCY}")
    if not 0 < queue_seconds <= MAX_QUEUE_SECONDS:
        raise ValueError(f"{QUEUE_SECONDS_ENV}={queue_seconds:g}: must be > 0 and <= {MAX_QUEUE_SECONDS:g}")
    balance = _flag(environ, BALANCE_ENV, "true")
    gc_freeze = _flag(environ, GC_FREEZE_ENV, "true")
    switch_interval = _seconds(environ, SWITCH_INTERVAL_ENV, SWITCH_INTERVAL_DEFAULT, 0.0001, 0.1)
    keep_alive = _seconds(environ, KEEP_ALIVE_ENV, KEEP_ALIVE_DEFAULT, 2, 3600)  # the role's bound (validate.yml)
    return {
        "concurrency": concurrency,
        "queue_seconds": queue_seconds,
        "static_prefix": environ.get(STATIC_PREFIX_ENV, ""),
        "keep_alive_seconds": keep_alive,
        "balance": balance,
        "switch_interval": switch_interval,
        "gc_freeze": gc_freeze,
    }


def _flag(environ: MutableMapping[str, str], name: str, default: str) -> bool:
    value = environ.get(name, default).strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"{name}={value}: must be true or false")
    return value == "true"


def freeze_loaded_objects() -> int:
    """Collect once, then keep every object alive now out of the collector's generations
    (``gc.freeze``); returns how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class AdmissionGate:
    """ASGI middleware: at most ``concurrency`` gated requests in ``app`` at once, a queue of at
    most ``queue_seconds`` in front of it (first come first served by when the call first came,
    retries of shed calls included), 503 with Retry-After past that. Runs in one event loop (one
    uvicorn worker): no locks."""

    def __init__(
        self,
        app: ASGIApp,
        concurrency: int,
        queue_seconds: float,
        static_prefix: str = "",
        clock: Callable[[], float] = time.monotonic,
        board: LoadBoard | None = None,
        keep_alive_seconds: float = KEEP_ALIVE_DEFAULT,
    ) -> None:
        self.app = app
        self.concurrency = concurrency
        self.queue_seconds = queue_seconds
        self.static_prefix = static_prefix
        self.clock = clock
        self.keep_alive_seconds = keep_alive_seconds
        self.longest_retry_after = longest_retry_after(keep_alive_seconds)
        self.busy = 0  # slots taken, including those handed to a waiter that has not resumed yet
        self.in_flight: dict[int, float] = {}  # request number -> start
        # a heap of (when the call first came, arrival number, future): the oldest call first.
        # A waiter that timed out or went away stays in it until popped (removing it at once
        # costs a scan of the heap: 16,000 waiters timing out took 13 s of the event loop).
        self.waiters: list[tuple[float, int, asyncio.Future[bool]]] = []
        self.waiting = 0  # the waiters in the heap whose future is not done yet
        self._arrivals = 0
        # connection -> (when its shed call first came, when it was last shed)
        self.shed_calls: dict[Any, tuple[float, float]] = {}
        self.returning: collections.deque[float] = collections.deque()  # when shed requests come back
        self.service_seconds = INITIAL_SERVICE_SECONDS
        self.admitted = 0
        self.shed = 0
        self.released = 0  # connections let go to even out the workers
        self._next = 0
        self.board = board
        self.clients: dict[Any, float] = {}  # client address -> when its last request came
        self._pruned = float("-inf")
        self._expiry: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------------- slots

    async def _acquire(self, since: float | None = None) -> int | None:
        """A slot number, or None when none came free within queue_seconds. ``since``: when the
        call first came (earlier than now for the retry of a shed call); the queue serves the
        oldest first."""
        if self.busy < self.concurrency and not self.waiting:
            self.busy += 1
        else:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[bool] = loop.create_future()
            self._arrivals += 1
            heapq.heappush(self.waiters, (self.clock() if since is None else since, self._arrivals, waiter))
            self.waiting += 1
            self._compact()
            timer = loop.call_later(self.queue_seconds, self._settle, waiter, False)
            try:
                granted = await waiter
            except BaseException:
                if waiter.cancelled():
                    self.waiting -= 1  # went away while waiting (its entry is popped later)
                elif waiter.result():
                    self._free()  # a slot handed to it meanwhile goes on to the next
                raise
            finally:
                timer.cancel()
            if not granted:
                return None
        self._next += 1
        self.in_flight[self._next] = self.clock()
        self.admitted += 1
        return self._next

    def _settle(self, waiter: asyncio.Future[bool], granted: bool) -> bool:
        """Answer a waiter still waiting (a slot, or its time is up); False if it was done."""
        if waiter.done():
            return False
        waiter.set_result(granted)
        self.waiting -= 1
        return True

    def _free(self) -> None:
        """A slot came free: it goes to the oldest call still waiting (reserved at once, so no
        newcomer takes it before that request resumes), else back to the pool. Waiters that
        timed out or went away are dropped on the way."""
        while self.waiters:
            if self._settle(heapq.heappop(self.waiters)[2], True):
                return
        self.busy -= 1

    def _compact(self) -> None:
        """Drop the done waiters once they are most of the heap: each is dropped once, so a
        waiter costs O(log n) however many time out (a slot that never frees pops none)."""
        if len(self.waiters) > 64 and len(self.waiters) > 2 * self.waiting:
            self.waiters = [entry for entry in self.waiters if not entry[2].done()]
            heapq.heapify(self.waiters)

    def _release(self, slot: int) -> None:
        took = self.clock() - self.in_flight.pop(slot)
        self.service_seconds += SERVICE_TIME_WEIGHT * (took - self.service_seconds)
        self._free()

    def retry_after(self) -> int:
        """Retry-After for a request shed now (see :func:`retry_after`)."""
        now = self.clock()
        while self.returning and self.returning[0] <= now:
            self.returning.popleft()
        # A request in flight for longer than the average says more about the pace than the average.
        oldest = now - min(self.in_flight.values()) if self.in_flight else 0.0
        seconds = retry_after(
            self.waiting + len(self.returning),
            self.concurrency,
            max(self.service_seconds, oldest),
            self.longest_retry_after,
        )
        back = now + seconds
        # kept sorted: most requests are shed with a Retry-After at least as late as the last
        index = len(self.returning)
        while index and self.returning[index - 1] > back:
            index -= 1
        self.returning.insert(index, back)
        return seconds

    # ---------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_gated(scope.get("path", ""), self.static_prefix):
            await self.app(scope, receive, send)
            return
        client = tuple(scope.get("client") or ())
        since = self._call_since(client)
        slot = await self._acquire(since)
        if slot is None:
            self._note_shed(client, since)
            if not await self._reject(receive, send):
                self._forget_shed(client)
            return
        self.shed_calls.pop(client, None)
        try:
            await self.app(scope, receive, self._balancing(client, send) if self.board is not None else send)
        finally:
            self._release(slot)

    # ---------------------------------------------------------------- retried calls

    def _call_since(self, client: Any) -> float:
        """When the call on this connection first came: the time of its first shed attempt when
        this request is its retry, now otherwise."""
        shed = self.shed_calls.get(client)
        return shed[0] if shed else self.clock()

    def _note_shed(self, client: Any, since: float) -> None:
        """Remember a shed call by its connection, to queue its retry by ``since``; forget the
        connections that uvicorn has closed since (idle past the keep-alive timeout)."""
        now = self.clock()
        if now - self._pruned >= 1.0:
            self._prune(now)
        if client:  # a connection without an address (a Unix socket) cannot be told apart
            self.shed_calls[client] = (since, now)
        if self.board is not None:
            self.board.publish(self.load())
            self._expire_later()

    def _forget_shed(self, client: Any) -> None:
        """The shed call's connection is closed (the client went away, or was answered with
        ``Connection: close``): its retry comes on a new connection, as a new call, and its client
        is no longer this worker's load."""
        if self.shed_calls.pop(client, None) is not None and self.board is not None:
            self.board.publish(self.load())

    def _seen(self, client: Any) -> None:
        """Note a request of ``client``; forget the clients idle past CONNECTION_IDLE_SECONDS
        (at most once a second); publish how many connections this worker serves."""
        now = self.clock()
        self.clients[client] = now
        if now - self._pruned >= 1.0:
            self._prune(now)
        self.board.publish(self.load())
        self._expire_later()

    def load(self) -> int:
        """The connections this worker answers for: those with a request in the last
        CONNECTION_IDLE_SECONDS, and those whose shed call will come back (its client sleeping
        Retry-After is still this worker's load: without it, the busier worker, shedding more,
        would look the idler one and keep its surplus)."""
        return len(self.clients.keys() | self.shed_calls.keys())

    def _prune(self, now: float) -> None:
        """Forget the clients quiet past CONNECTION_IDLE_SECONDS, and the shed calls whose
        connection uvicorn has closed (quiet past its keep-alive timeout)."""
        self._pruned = now
        for gone in [c for c, seen in self.clients.items() if now - seen > CONNECTION_IDLE_SECONDS]:
            del self.clients[gone]
        for gone in [c for c, times in self.shed_calls.items() if now - times[1] > self.keep_alive_seconds]:
            del self.shed_calls[gone]

    def _expire_later(self) -> None:
        """A worker whose clients all went quiet gets no request that would prune them: a timer
        does, so its published count falls to what it serves and the others can hand it some."""
        if self._expiry is None and (self.clients or self.shed_calls):
            self._expiry = asyncio.get_running_loop().call_later(CONNECTION_IDLE_SECONDS + 0.5, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        self._prune(self.clock())
        self.board.publish(self.load())
        self._expire_later()

    def _balancing(self, client: Any, send: Send) -> Send:
        """``send`` that adds ``Connection: close`` to the response when this worker serves two
        connections more than another (:func:`overloaded`): the client comes back on a new one."""
        self._seen(client)

        async def balanced(message: Message) -> None:
            if (
                message["type"] == "http.response.start"
                and client in self.clients
                and overloaded(self.load(), self.board.others())
            ):
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
                del self.clients[client]
                self.board.publish(self.load())
                self.released += 1
            await send(message)

        return balanced

    async def _reject(self, receive: Receive, send: Send) -> bool:
        """Drain the request (up to DRAIN_LIMIT, within the queue time) and answer 503 with
        Retry-After. True when the connection stays open for the client's retry."""
        self.shed += 1
        seconds = self.retry_after()
        read, more, close = 0, True, False
        until = self.clock() + self.queue_seconds
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(until - self.clock(), 0.0))
            except asyncio.TimeoutError:  # noqa: UP041 - the image may run Python 3.10, where it is not TimeoutError
                close = True  # a client this slow gets its answer now
                break
            if message["type"] != "http.request":
                return False  # the client went away
            read += len(message.get("body", b""))
            more = message.get("more_body", False)
            if more and read > DRAIN_LIMIT:
                close = True
                break
        body = json.dumps(
            {
                "error_code": "TEMPORARILY_UNAVAILABLE",
                "message": f"The tracking server is busy: {self.concurrency} requests in progress on this worker"
                f" and no slot came free within {self.queue_seconds:g} s. Retry after {seconds} s.",
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(seconds).encode()),
        ]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return not close


def _gate(app: ASGIApp) -> AdmissionGate:
    settings = settings_from_env()
    sys.setswitchinterval(settings.pop("switch_interval"))
    if settings.pop("gc_freeze"):
        freeze_loaded_objects()
    board = None
    if settings.pop("balance"):
        try:
            board = LoadBoard(board_path())
        except OSError as exc:  # no shared file: the gate still works, without evening out
            print(f"mlflow_k8s_admission: connections are not balanced across workers: {exc}", flush=True)
    return AdmissionGate(app, board=board, **settings)


def create_app() -> AdmissionGate:
    """`mlflow server --app-name admission-gate`: MLflow's ASGI app behind the gate."""
    from mlflow.server.fastapi_app import app  # noqa: PLC0415 - heavy: in the worker only, not in `mlflow server`

    return _gate(app)


def create_auth_app() -> AdmissionGate:
    """`mlflow server --app-name admission-gate-basic-auth`: basic auth's app behind the gate."""
    from mlflow.server.auth import create_app as create_basic_auth_app  # noqa: PLC0415 - in the worker only

    return _gate(create_basic_auth_app())
