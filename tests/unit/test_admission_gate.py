"""The admission gate's pure parts and its ASGI behaviour around a stand-in app: the module the
mlflow_server role ships in its ConfigMap (roles/mlflow_server/files/mlflow_k8s_admission.py),
imported from that very file. On a real `mlflow server`: tests/services/test_mlflow_server_role.py."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import weakref

import pytest

from tests.harness.role_files import load_role_file, role_file

GATE_FILE = role_file("mlflow_server", "mlflow_k8s_admission")
gate = load_role_file("mlflow_server", "mlflow_k8s_admission")


@pytest.mark.parametrize(
    ("path", "prefix", "gated"),
    [
        ("/api/2.0/mlflow/runs/log-batch", "", True),
        ("/ajax-api/2.0/mlflow/runs/search", "", True),
        ("/api/2.0/mlflow-artifacts/artifacts/1/a/model.pkl", "", True),
        ("/graphql", "", True),
        ("/get-artifact", "", True),
        ("/health", "", False),
        ("/version", "", False),
        ("/metrics", "", False),
        ("/static-files/static/js/main.js", "", False),
        ("/", "", False),
        ("/mlflow/api/2.0/mlflow/runs/log-batch", "/mlflow", True),
        ("/mlflow/health", "/mlflow", False),
        ("/mlflow/version", "/mlflow/", False),
        ("/mlflow/static-files/favicon.ico", "/mlflow", False),
        ("/mlflow", "/mlflow", False),
        ("/mlflow/", "/mlflow", False),
        # Prometheus registers /metrics without the prefix
        ("/metrics", "/mlflow", False),
        # the prefix only strips whole segments: /mlflowx/health is another path
        ("/mlflowx/health", "/mlflow", True),
    ],
)
def test_which_paths_pass_through_the_gate(path: str, prefix: str, gated: bool) -> None:
    assert gate.is_gated(path, prefix) is gated


def test_retry_after_is_the_time_to_serve_what_is_ahead() -> None:
    # 15 ahead + this one, 8 slots, 4 s a request: 16 x 4 / 8 = 8 s
    assert gate.retry_after(15, 8, 4.0) == 8
    # rounded up, never 0 (urllib3 ignores Retry-After: 0 and falls back to its own backoff)
    assert gate.retry_after(0, 8, 0.1) == 1
    assert gate.retry_after(0, 8, 0.0) == gate.RETRY_AFTER_MIN
    assert gate.retry_after(2, 1, 1.5) == 5  # ceil(4.5)
    # clamped: a client learns nothing by sleeping past a minute
    assert gate.retry_after(10_000, 1, 30.0) == gate.RETRY_AFTER_MAX
    # ... and below the server's keep-alive timeout, so the client's connection outlives its sleep
    assert gate.retry_after(10_000, 1, 30.0, longest=4) == 4


def test_the_longest_retry_after_leaves_the_connection_open() -> None:
    assert gate.longest_retry_after(75) == gate.RETRY_AFTER_MAX  # the role's keep-alive
    assert gate.longest_retry_after(5) == 4  # uvicorn's default
    assert gate.longest_retry_after(5.5) == 5
    assert gate.longest_retry_after(1) == gate.RETRY_AFTER_MIN


def test_retry_after_grows_with_the_load() -> None:
    values = [gate.retry_after(ahead, 8, 3.0) for ahead in (0, 10, 40, 100, 150)]
    assert values == sorted(values)
    assert values[0] < values[-1]


def test_settings_from_the_role_env() -> None:
    env = {gate.CONCURRENCY_ENV: "4", gate.QUEUE_SECONDS_ENV: "2", gate.STATIC_PREFIX_ENV: "/mlflow"}
    assert gate.settings_from_env(env) == {
        "concurrency": 4,
        "queue_seconds": 2.0,
        "static_prefix": "/mlflow",
        "keep_alive_seconds": gate.KEEP_ALIVE_DEFAULT,
        "balance": True,
        "switch_interval": gate.SWITCH_INTERVAL_DEFAULT,
        "gc_freeze": True,
    }
    assert gate.settings_from_env({**env, gate.KEEP_ALIVE_ENV: "75"})["keep_alive_seconds"] == 75.0
    assert gate.settings_from_env({**env, gate.BALANCE_ENV: "False"})["balance"] is False
    assert gate.settings_from_env({**env, gate.GC_FREEZE_ENV: "false"})["gc_freeze"] is False
    assert gate.settings_from_env({**env, gate.SWITCH_INTERVAL_ENV: "0.002"})["switch_interval"] == 0.002
    for bad, named in (
        ({gate.CONCURRENCY_ENV: "0"}, gate.CONCURRENCY_ENV),
        ({gate.CONCURRENCY_ENV: "41"}, gate.CONCURRENCY_ENV),
        ({gate.QUEUE_SECONDS_ENV: "0"}, gate.QUEUE_SECONDS_ENV),
        ({gate.QUEUE_SECONDS_ENV: "61"}, gate.QUEUE_SECONDS_ENV),
        ({gate.CONCURRENCY_ENV: "many"}, gate.CONCURRENCY_ENV),
        ({gate.BALANCE_ENV: "sometimes"}, gate.BALANCE_ENV),
        ({gate.GC_FREEZE_ENV: "1"}, gate.GC_FREEZE_ENV),
        ({gate.SWITCH_INTERVAL_ENV: "0"}, gate.SWITCH_INTERVAL_ENV),
        ({gate.SWITCH_INTERVAL_ENV: "soon"}, gate.SWITCH_INTERVAL_ENV),
        ({gate.KEEP_ALIVE_ENV: "1"}, gate.KEEP_ALIVE_ENV),
        ({gate.KEEP_ALIVE_ENV: "forever"}, gate.KEEP_ALIVE_ENV),
    ):
        with pytest.raises(ValueError, match=named):
            gate.settings_from_env(bad)


@pytest.fixture
def unfrozen():
    """The collector as a test found it: nothing frozen before, everything thawed after."""
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.parametrize(("value", "frozen"), [(None, True), ("true", True), ("false", False)])
def test_a_worker_freezes_what_is_loaded_unless_told_not_to(value, frozen, unfrozen, monkeypatch) -> None:
    monkeypatch.setenv(gate.BALANCE_ENV, "false")  # no load board file for this
    if value is None:
        monkeypatch.delenv(gate.GC_FREEZE_ENV, raising=False)
    else:
        monkeypatch.setenv(gate.GC_FREEZE_ENV, value)
    app = object()  # alive when the gate is made, as MLflow's app is
    wrapped = gate._gate(app)
    assert wrapped.app is app
    assert (gc.get_freeze_count() > 0) is frozen
    # frozen objects are out of the generations a collection scans
    assert (gc.get_freeze_count() >= len(gc.get_objects()) // 2) is frozen


def test_freezing_keeps_later_garbage_collectable(unfrozen) -> None:
    frozen = gate.freeze_loaded_objects()
    assert frozen == gc.get_freeze_count() > 0
    # what requests allocate after the freeze still goes: a reference cycle made now is collected
    ref = weakref.ref(Cycle())
    gc.collect()
    assert ref() is None


class Cycle:
    def __init__(self) -> None:
        self.me = self


# --------------------------------------------------------------------------- ASGI behaviour


class SlowApp:
    """An ASGI app whose requests each wait until released; counts how many are inside at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.release = asyncio.Event()
        self.order: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)
        self.order.append(scope["path"])
        try:
            if "/hold" in scope["path"]:
                await self.release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            self.inside -= 1


async def _request(app, path: str, client: tuple = ("10.0.0.1", 40000)) -> dict:
    sent: list[dict] = []
    body = [{"type": "http.request", "body": b'{"run_id": "x"}', "more_body": False}]

    async def receive():
        return body.pop(0) if body else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "path": path, "method": "POST", "headers": [], "client": client}, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return {
        "status": start["status"],
        "headers": {k.decode(): v.decode() for k, v in start["headers"]},
        "body": b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
    }


def test_at_most_k_inside_the_rest_queue_in_order_or_get_503() -> None:
    async def scenario():
        inner = SlowApp()
        app = gate.AdmissionGate(inner, concurrency=2, queue_seconds=0.5)
        held = [asyncio.create_task(_request(app, f"/api/hold-{i}")) for i in range(2)]
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(_request(app, f"/api/hold-queued-{i}")) for i in range(2)]
        await asyncio.sleep(0.05)
        # full: /health is not held back; the queued requests go in when the first two finish
        health = await _request(app, "/health")
        most_while_full = inner.most
        inner.release.set()
        done = await asyncio.gather(*held, *queued)
        # full again, nothing released: another API request is shed after the queue time
        inner.release.clear()
        again = [asyncio.create_task(_request(app, f"/api/hold-again-{i}")) for i in range(2)]
        await asyncio.sleep(0.05)
        shed = await _request(app, "/api/shed")
        inner.release.set()
        await asyncio.gather(*again)
        return inner, app, health, most_while_full, shed, done

    inner, app, health, most_while_full, shed, done = asyncio.run(scenario())
    assert health["status"] == 200
    assert most_while_full == 3, "only /health went in beside the two held requests"
    assert inner.most == 3
    assert [d["status"] for d in done] == [200, 200, 200, 200]
    # the two queued waited their turn, first come first served
    api = [p for p in inner.order if p.startswith("/api/")]
    assert api[:4] == ["/api/hold-0", "/api/hold-1", "/api/hold-queued-0", "/api/hold-queued-1"]
    assert shed["status"] == 503
    assert "/api/shed" not in inner.order
    assert int(shed["headers"]["retry-after"]) >= gate.RETRY_AFTER_MIN
    assert json.loads(shed["body"])["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert (app.admitted, app.shed, app.busy, app.in_flight) == (6, 1, 0, {})


def test_retry_after_counts_the_shed_requests_not_back_yet() -> None:
    async def scenario():
        inner = SlowApp()
        app = gate.AdmissionGate(inner, concurrency=1, queue_seconds=0.05)
        held = asyncio.create_task(_request(app, "/api/hold"))
        await asyncio.sleep(0.01)
        answers = [await _request(app, f"/api/shed-{i}") for i in range(5)]
        inner.release.set()
        await held
        return [int(a["headers"]["retry-after"]) for a in answers]

    waits = asyncio.run(scenario())
    assert waits == sorted(waits), waits
    assert waits[-1] > waits[0], waits


def test_the_retry_of_a_shed_call_goes_ahead_of_newer_calls() -> None:
    # MLflow's client retries a 503 on the same keep-alive connection (the same client address):
    # that retry is queued by when its call first came, so a call cannot lose the draw to newer
    # calls attempt after attempt until its retries run out.
    async def scenario():
        inner = SlowApp()
        app = gate.AdmissionGate(inner, concurrency=1, queue_seconds=0.3)
        held = asyncio.create_task(_request(app, "/api/hold-first", client=("10.0.0.9", 1)))
        await asyncio.sleep(0.01)
        shed = await _request(app, "/api/hold-old", client=("10.0.0.1", 40000))
        newer = [
            asyncio.create_task(_request(app, f"/api/hold-new-{i}", client=("10.0.0.2", 40000 + i))) for i in range(2)
        ]
        await asyncio.sleep(0.02)
        retry = asyncio.create_task(_request(app, "/api/hold-old-retry", client=("10.0.0.1", 40000)))
        await asyncio.sleep(0.02)
        inner.release.set()
        answers = await asyncio.gather(held, *newer, retry)
        return inner, app, shed, answers

    inner, app, shed, answers = asyncio.run(scenario())
    assert shed["status"] == 503
    assert [a["status"] for a in answers] == [200, 200, 200, 200]
    assert inner.order == ["/api/hold-first", "/api/hold-old-retry", "/api/hold-new-0", "/api/hold-new-1"]
    assert app.shed_calls == {}, "an admitted call is forgotten"


def test_a_shed_call_is_forgotten_once_its_connection_has_closed() -> None:
    now = [100.0]
    app = gate.AdmissionGate(SlowApp(), concurrency=1, queue_seconds=1, clock=lambda: now[0], keep_alive_seconds=5)
    app._note_shed(("10.0.0.1", 1), 98.0)
    assert app._call_since(("10.0.0.1", 1)) == 98.0
    assert app._call_since(("10.0.0.2", 1)) == 100.0  # a new call: now
    now[0] = 106.0  # idle past uvicorn's keep-alive: that connection is gone
    app._note_shed(("10.0.0.2", 1), 106.0)
    assert set(app.shed_calls) == {("10.0.0.2", 1)}
    assert app._call_since(("10.0.0.1", 1)) == 106.0
    app._note_shed((), 106.0)  # no address (a Unix socket): nothing to know it by
    assert set(app.shed_calls) == {("10.0.0.2", 1)}


def test_a_slot_freed_while_its_waiter_is_cancelled_goes_to_the_next() -> None:
    async def scenario():
        app = gate.AdmissionGate(SlowApp(), concurrency=1, queue_seconds=5)
        slot = await app._acquire()
        first = asyncio.create_task(app._acquire())
        second = asyncio.create_task(app._acquire())
        await asyncio.sleep(0.01)  # both wait
        app._release(slot)  # the slot is handed to `first` ...
        first.cancel()  # ... which goes away before it resumes: `second` gets it
        with pytest.raises(asyncio.CancelledError):
            await first
        got = await second
        busy_with_one = app.busy
        app._release(got)
        return got, busy_with_one, app

    got, busy_with_one, app = asyncio.run(scenario())
    assert got is not None
    assert busy_with_one == 1
    assert (app.busy, app.in_flight, list(app.waiters)) == (0, {}, [])


def test_waiters_that_time_out_or_go_away_leave_the_queue_in_order() -> None:
    """Waiters that timed out or were cancelled stay in the heap until popped (issue #28 point 3:
    removing each at once scanned the heap); they are never handed a slot, the live ones keep
    their order, and the heap does not grow without bound."""

    async def scenario():
        clock = [0.0]
        app = gate.AdmissionGate(SlowApp(), concurrency=1, queue_seconds=5, clock=lambda: clock[0])
        slot = await app._acquire()
        clock[0] = 1.0
        oldest = asyncio.create_task(app._acquire())  # 5 s to wait: outlives the crowd below
        await asyncio.sleep(0)
        app.queue_seconds = 0.02
        doomed = []
        for i in range(300):  # these time out while the slot stays taken
            clock[0] = 2.0 + i
            doomed.append(asyncio.create_task(app._acquire()))
        gone = asyncio.create_task(app._acquire())
        await asyncio.sleep(0)
        gone.cancel()
        timed_out = await asyncio.gather(*doomed)
        with pytest.raises(asyncio.CancelledError):
            await gone
        app.queue_seconds = 5
        clock[0] = 1000.0
        newest = asyncio.create_task(app._acquire())
        await asyncio.sleep(0)
        assert len(app.waiters) <= 64 + 2 * 2, len(app.waiters)  # compacted: not 303 entries
        assert app.waiting == 2
        app._release(slot)  # to the oldest live waiter, past the dead ones
        got = await asyncio.wait_for(oldest, 0.5)
        await asyncio.sleep(0)
        assert not newest.done() and app.waiting == 1  # still waiting: `oldest` holds the slot
        app._release(got)
        assert await asyncio.wait_for(newest, 0.5) is not None
        return timed_out, app

    timed_out, app = asyncio.run(scenario())
    assert timed_out == [None] * 300
    assert (app.busy, app.waiting) == (1, 0)


def test_a_request_after_a_crowd_timed_out_is_admitted_at_once() -> None:
    async def scenario():
        app = gate.AdmissionGate(SlowApp(), concurrency=1, queue_seconds=0.01)
        slot = await app._acquire()
        shed = await asyncio.gather(*(app._acquire() for _shed in range(100)))
        app._release(slot)
        return app, shed, await asyncio.wait_for(app._acquire(), 0.5)

    app, shed, again = asyncio.run(scenario())
    assert shed == [None] * 100 and again is not None
    assert (app.busy, app.waiting) == (1, 0)


# --------------------------------------------------------------------------- evening out the workers


@pytest.mark.parametrize(
    ("mine", "others", "let_go"),
    [
        (8, [0], True),  # all eight clients on this worker, the other idle
        (5, [3], True),
        (4, [3], False),  # one more than the other: moving a client would only swap the imbalance
        (4, [4], False),
        (3, [], False),  # the only worker
        (6, [5, 2], True),  # the least loaded one counts
        (0, [0], False),
    ],
)
def test_a_worker_lets_a_connection_go_when_another_has_two_fewer(mine, others, let_go) -> None:
    assert gate.overloaded(mine, others) is let_go


_HOLDER = """
import sys, time, importlib.util
spec = importlib.util.spec_from_file_location("g", sys.argv[1])
g = importlib.util.module_from_spec(spec); spec.loader.exec_module(g)
board = g.LoadBoard(sys.argv[2])
board.publish(int(sys.argv[3]))
print(board.slot, flush=True)
sys.stdin.read()
"""


def test_the_load_board_shows_the_other_living_workers(tmp_path) -> None:
    """Real processes on one file: each sees the others' loads, a worker that died drops out
    (the kernel released its lock) and its slot is taken again."""
    import subprocess

    path = str(tmp_path / "board")
    clock = [0.0]
    mine = gate.LoadBoard(path, clock=lambda: clock[0])
    holders = []
    try:
        for load in (5, 2):
            proc = subprocess.Popen(
                [sys.executable, "-c", _HOLDER, str(GATE_FILE), path, str(load)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            holders.append((proc, int(proc.stdout.readline())))
        assert mine.slot == 0
        assert sorted(slot for _proc, slot in holders) == [1, 2]
        assert sorted(mine.others()) == [2, 5]
        mine.publish(7)
        # the others' new loads are read at once; who is alive, once a second
        first, _slot = holders[0]
        first.stdin.close()
        first.wait(timeout=10)
        assert sorted(mine.others()) == [2, 5]
        clock[0] += gate.BOARD_REFRESH_SECONDS
        assert mine.others() == [2]
        # a new worker takes the free slot (locks are per process: it must be another one)
        again = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(GATE_FILE), path, "1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        holders.append((again, int(again.stdout.readline())))
        assert holders[-1][1] == holders[0][1]
        clock[0] += gate.BOARD_REFRESH_SECONDS
        assert sorted(mine.others()) == [1, 2]
    finally:
        for proc, _slot in holders:
            if proc.poll() is None:
                proc.stdin.close()
                proc.wait(timeout=10)
        mine.close()


class FixedBoard:
    def __init__(self, others):
        self.loads = others
        self.published = []

    def publish(self, load):
        self.published.append(load)

    def others(self):
        return self.loads


@pytest.mark.parametrize(("others", "closes"), [([0], True), ([1], True), ([2], False), ([], False)])
def test_the_worker_with_more_connections_lets_one_go(others, closes) -> None:
    """Three client connections on this worker: one is let go (Connection: close, and it no
    longer counts) when another worker serves at most one."""

    async def scenario():
        board = FixedBoard([99])  # while the first two come, the other worker is busier
        app = gate.AdmissionGate(SlowApp(), concurrency=4, queue_seconds=1, board=board)
        for port in (40001, 40002):
            await _request(app, "/api/2.0/mlflow/runs/log-metric", ("10.0.0.1", port))
        board.loads = others  # what the other worker serves now
        released_before = app.released
        answer = await _request(app, "/api/2.0/mlflow/runs/log-metric", ("10.0.0.1", 40003))
        return answer, board, app, released_before

    answer, board, app, released_before = asyncio.run(scenario())
    assert answer["status"] == 200
    assert (answer["headers"].get("connection") == "close") is closes
    assert app.released - released_before == int(closes)
    # what is published is the connections still served
    assert board.published[-1] == len(app.clients) == (2 if closes else 3)


def test_connections_idle_past_the_keep_alive_timeout_stop_counting() -> None:
    now = [0.0]

    async def scenario():
        board = FixedBoard([5])
        app = gate.AdmissionGate(SlowApp(), concurrency=4, queue_seconds=1, clock=lambda: now[0], board=board)
        await _request(app, "/api/x", ("10.0.0.1", 1))
        await _request(app, "/api/x", ("10.0.0.1", 2))
        now[0] += gate.CONNECTION_IDLE_SECONDS + 1
        await _request(app, "/api/x", ("10.0.0.1", 2))
        return board

    assert asyncio.run(scenario()).published == [1, 2, 1]


def test_probes_are_never_let_go() -> None:
    async def scenario():
        app = gate.AdmissionGate(SlowApp(), concurrency=4, queue_seconds=1, board=FixedBoard([0]))
        return await _request(app, "/health")

    assert "connection" not in asyncio.run(scenario())["headers"]


def test_a_worker_whose_clients_went_quiet_publishes_that_without_a_request() -> None:
    """No request comes to prune them: a timer drops the idle clients and publishes 0."""
    now = [0.0]

    async def scenario():
        board = FixedBoard([5])
        app = gate.AdmissionGate(SlowApp(), concurrency=4, queue_seconds=1, clock=lambda: now[0], board=board)
        await _request(app, "/api/x", ("10.0.0.1", 1))
        await _request(app, "/api/x", ("10.0.0.1", 2))
        now[0] += gate.CONNECTION_IDLE_SECONDS + 1
        app._expiry.cancel()  # noqa: SLF001 - run the timer now instead of waiting for it
        app._expire()  # noqa: SLF001
        return board, app

    board, app = asyncio.run(scenario())
    assert board.published[-1] == 0
    assert app.clients == {}
    assert app._expiry is None  # noqa: SLF001 - nothing left to expire, no timer


def test_a_client_whose_call_was_shed_still_counts_until_its_connection_closes() -> None:
    """A shed client sleeps Retry-After without a request: still this worker's load (it comes
    back here, on its connection). Were it not counted, the busier worker, shedding more, would
    publish the smaller count and keep its surplus of connections."""
    now = [0.0]

    async def scenario():
        board = FixedBoard([50])  # the other worker busier: nothing is let go
        inner = SlowApp()
        app = gate.AdmissionGate(
            inner, concurrency=1, queue_seconds=0.05, clock=lambda: now[0], board=board, keep_alive_seconds=20
        )
        held = asyncio.create_task(_request(app, "/api/hold", ("10.0.0.1", 1)))
        await asyncio.sleep(0.01)
        shed = await _request(app, "/api/x", ("10.0.0.1", 2))
        after_shed = board.published[-1]
        now[0] += gate.CONNECTION_IDLE_SECONDS + 1  # both quiet past the idle time
        app._expire()  # noqa: SLF001 - the timer's work, now
        while_sleeping = board.published[-1]
        now[0] += 20  # past the keep-alive: uvicorn has closed the shed client's connection
        app._expire()  # noqa: SLF001
        inner.release.set()
        await held
        return shed, after_shed, while_sleeping, board.published[-1]

    shed, after_shed, while_sleeping, closed = asyncio.run(scenario())
    assert shed["status"] == 503
    assert after_shed == 2
    assert while_sleeping == 1, "the sleeping shed client still counts, the quiet one does not"
    assert closed == 0


@pytest.mark.parametrize("ending", ["slow body", "client gone"])
def test_a_shed_call_whose_connection_closes_stops_counting_at_once(ending) -> None:
    """A shed request whose body does not come within the queue time gets its 503 with
    ``Connection: close``; one whose client went away gets nothing. Either way its connection is
    gone: the retry comes as a new call, and the client is no longer this worker's load."""

    async def scenario():
        board = FixedBoard([50])
        inner = SlowApp()
        app = gate.AdmissionGate(inner, concurrency=1, queue_seconds=0.05, board=board, keep_alive_seconds=20)
        held = asyncio.create_task(_request(app, "/api/hold", ("10.0.0.1", 1)))
        await asyncio.sleep(0.01)
        sent: list[dict] = []

        async def receive():
            if ending == "client gone":
                return {"type": "http.disconnect"}
            await asyncio.sleep(1)  # the rest of the body is slower than the queue time
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "path": "/api/x", "method": "POST", "headers": [], "client": ("10.0.0.1", 2)}
        await app(scope, receive, send)
        shed_calls = dict(app.shed_calls)
        inner.release.set()
        await held
        return sent, shed_calls, board.published

    sent, shed_calls, published = asyncio.run(scenario())
    if ending == "slow body":
        headers = dict(sent[0]["headers"])
        assert (sent[0]["status"], headers[b"connection"]) == (503, b"close")
    else:
        assert sent == []
    assert shed_calls == {}, "a closed connection's call is forgotten"
    assert published[-1] == 1, "only the held client counts"
