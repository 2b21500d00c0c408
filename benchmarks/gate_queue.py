"""The admission gate's wait queue under a crowd (issue #28 point 3): N requests wait for a slot
that never frees and all time out, while a ticker stands in for `/health` on the same event loop.

Measured for the gate of this checkout and, side by side in the same run, the gate of another
revision (`--against`, default `main`: `git show REV:roles/mlflow_server/files/...`): the
event-loop time from the first timeout to the last, and the longest the ticker was held (what
a `/health` probe would have waited). In-process, no server: the queue's own cost.

    .venv/bin/python -m benchmarks gate_queue [--waiters 2000 16000] [--against main]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GATE = "roles/mlflow_server/files/mlflow_k8s_admission.py"


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def crowd(gate, waiters: int, queue_seconds: float) -> dict[str, float]:
    async def app(scope, receive, send):  # never called: the one slot is taken below
        raise AssertionError("admitted")

    admission = gate.AdmissionGate(app, concurrency=1, queue_seconds=queue_seconds)
    await admission._acquire()  # the slot that never frees
    longest = 0.0
    stop = asyncio.Event()

    async def ticker():
        nonlocal longest
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    tasks = [asyncio.create_task(admission._acquire()) for _waiter in range(waiters)]
    await asyncio.sleep(0)  # every waiter queued
    tick = asyncio.create_task(ticker())
    start = time.perf_counter()
    results = await asyncio.gather(*tasks)
    took = time.perf_counter() - start
    stop.set()
    await tick
    assert results == [None] * waiters, "a waiter was admitted"
    return {"seconds": round(took, 3), "longest_stall_ms": round(longest * 1000, 1)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gate_queue", description=__doc__.splitlines()[0])
    parser.add_argument("--waiters", type=int, nargs="+", default=[2000, 16000])
    parser.add_argument("--against", default="main", help="git revision of the other gate (default: main)")
    parser.add_argument("--queue-seconds", type=float, default=0.5)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "gate_other.py"
        shown = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{args.against}:{GATE}"], capture_output=True, text=True, check=False
        )
        if shown.returncode != 0:
            print(f"gate_queue: cannot read {GATE} at {args.against}: {shown.stderr.strip()}", file=sys.stderr)
            return 2
        other.write_text(shown.stdout)
        gates = {"this checkout": load(ROOT / GATE, "gate_this"), args.against: load(other, "gate_other")}
        rows = []
        for waiters in args.waiters:
            row = {"waiters": waiters}
            for label, gate in gates.items():  # side by side, the same crowd in turn
                row[label] = asyncio.run(crowd(gate, waiters, args.queue_seconds))
            mine, theirs = row["this checkout"], row[args.against]
            row["ratio_seconds"] = round(theirs["seconds"] / max(mine["seconds"], 1e-6), 1)
            rows.append(row)
            print(
                f"{waiters:>6} waiters timing out: this checkout {mine['seconds']:.3f} s "
                f"(longest stall {mine['longest_stall_ms']} ms), {args.against} {theirs['seconds']:.3f} s "
                f"(longest stall {theirs['longest_stall_ms']} ms): {row['ratio_seconds']}x",
                flush=True,
            )
    out = ROOT / "benchmarks" / "results" / f"gate_queue-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    print(f"gate_queue: results in {out.relative_to(ROOT)}")
    return 0
