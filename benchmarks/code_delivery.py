# ruff: noqa: PLC0415 - imports are lazy: `python -m benchmarks --list` imports every benchmark module
"""The code snapshot's cost: time added between submission and the entry point's start.

    .venv/bin/python -m benchmarks code_delivery [--runs 5] [--data-mb 50]

Two projects: ``small`` (examples/wine-quality, about 25 kB) and ``data`` (the same with
``--data-mb`` MB of incompressible data files in ``data/``). For each, against a real
``mlflow server`` on the harness's PostgreSQL with proxied artifacts on loopback, the three
steps artifact delivery adds, each timed on its own, in one run:

- ``pack``: snapshot.pack on the controller (walk, .mlflowignore, deterministic tar.gz, sha256);
- ``upload``: snapshot.log_snapshot to a fresh run (artifact PUT through the proxy + hash tag);
- ``fetch``: the init container's exact command (``python -I -c <snapshot_fetch.py>``, its env
  as rendered) as a process: interpreter start, download, sha256 check, safe unpack.

The prebuilt image with the code inside adds none of these three (0 s here) but needs a build
and push per change, which this machine cannot run (no Docker engine). Not measurable without
a kubelet, and the same for both ways except where said: scheduling, the image pull (the
snapshot way pulls ``docker_env.image``, usually cached; a rebuilt image is a new layer to pull
on each node per change), and the init container's own create/start (about one container start,
typically 0.5 to 2 s on a real kubelet, not measured here). Results go to stdout and to
benchmarks/results/code_delivery-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
COLLECTIONS = ROOT / ".collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

EXAMPLE = ROOT / "examples" / "wine-quality"
RESULTS = ROOT / "benchmarks" / "results"


def make_projects(workdir: Path, data_mb: int) -> dict[str, Path]:
    small = workdir / "small"
    shutil.copytree(EXAMPLE, small)
    data = workdir / "data"
    shutil.copytree(EXAMPLE, data)
    chunk = 10 * 1024 * 1024
    remaining = data_mb * 1024 * 1024
    index = 0
    while remaining > 0:
        size = min(chunk, remaining)
        (data / "data" / f"part-{index:02d}.bin").write_bytes(os.urandom(size))  # incompressible: worst case
        remaining -= size
        index += 1
    return {"small": small, "data": data}


def fetch_as_the_pod(job: dict, dest: Path) -> float:
    (init,) = job["spec"]["template"]["spec"]["initContainers"]
    env = {item["name"]: item["value"] for item in init["env"] if "value" in item}
    env["MLFLOW_SNAPSHOT_DEST"] = str(dest)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-I", "-c", init["command"][2]],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the fetch failed: {done.stderr}")
    return took


def measure(url: str, projects: dict[str, Path], runs: int, workdir: Path) -> list[dict]:
    from mlflow.tracking import MlflowClient

    from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import snapshot, snapshot_job

    client = MlflowClient(url)
    experiment = client.create_experiment(f"code-delivery-{os.getpid()}-{int(time.time())}")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "bench"},
        "spec": {"template": {"spec": {"containers": [{"name": "b", "image": "python:3"}]}}},
    }
    out = []
    for round_ in range(runs):
        for name, path in projects.items():  # alternate, so drift hits both alike
            packed_dir = workdir / f"packed-{name}-{round_}"
            packed_dir.mkdir()
            started = time.perf_counter()
            snap = snapshot.pack(str(path), str(packed_dir), max_mb=0)
            pack_s = time.perf_counter() - started
            run_id = client.create_run(experiment).info.run_id
            started = time.perf_counter()
            snapshot.log_snapshot(client, run_id, snap)
            upload_s = time.perf_counter() - started
            artifact = snapshot.artifact_url(url, client.get_run(run_id).info.artifact_uri)
            rendered = snapshot_job.add_code_delivery(job, artifact, snap.sha256)
            fetch_s = fetch_as_the_pod(rendered, workdir / f"code-{name}-{round_}")
            out.append(
                {
                    "project": name,
                    "round": round_,
                    "archive_bytes": snap.size,
                    "files_bytes": snap.unpacked_size,
                    "pack_s": pack_s,
                    "upload_s": upload_s,
                    "fetch_s": fetch_s,
                    "total_s": pack_s + upload_s + fetch_s,
                }
            )
            shutil.rmtree(workdir / f"code-{name}-{round_}")
            shutil.rmtree(packed_dir)
    return out


def python_start() -> float:
    """What any container's Python pays to start (the prebuilt image's entry point pays it too)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
    return time.perf_counter() - started


def summarize(rows: list[dict]) -> list[dict]:
    summary = []
    for name in dict.fromkeys(r["project"] for r in rows):
        mine = [r for r in rows if r["project"] == name]
        item = {"project": name, "archive_MB": round(mine[0]["archive_bytes"] / 1e6, 2)}
        for key in ("pack_s", "upload_s", "fetch_s", "total_s"):
            item[key] = round(statistics.median(r[key] for r in mine), 3)
        item["prebuilt_s"] = 0.0
        summary.append(item)
    return summary


def table(summary: list[dict], baseline: float) -> str:
    lines = [
        "median s   archive MB   pack   upload   fetch+unpack   added total   prebuilt image",
    ]
    for s in summary:
        lines.append(
            f"{s['project']:<9}  {s['archive_MB']:>10}  {s['pack_s']:>5.2f}  {s['upload_s']:>7.2f}  "
            f"{s['fetch_s']:>13.2f}  {s['total_s']:>12.2f}  {s['prebuilt_s']:>14.2f}"
        )
    lines.append(
        f"(fetch includes one Python start, {baseline:.3f} s here; a prebuilt image pays none of these "
        "but a build + push per change, and the init container's start is not measured)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks code_delivery", description=__doc__.split("\n", maxsplit=1)[0]
    )
    parser.add_argument("--runs", type=int, default=5, help="rounds per project (default 5)")
    parser.add_argument("--data-mb", type=int, default=50, help="MB of data files in the 'data' project (default 50)")
    args = parser.parse_args(argv)

    from tests.harness.mlflow_server import fresh_database, services_start, services_stop, start_server

    lease = os.getpid()
    settings = services_start(lease=lease)
    workdir = Path(tempfile.mkdtemp(prefix="bench-code-delivery-"))
    try:
        projects = make_projects(workdir / "projects", args.data_mb)
        with fresh_database("postgresql", settings) as uri:
            server = start_server(uri, workdir=workdir / "server")
            try:
                rows = measure(server.url, projects, args.runs, workdir)
            finally:
                server.stop()
        baseline = statistics.median(python_start() for _round in range(5))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        services_stop(lease=lease)
    summary = summarize(rows)
    print(table(summary, baseline))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = RESULTS / f"code_delivery-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "settings": vars(args),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "python_start_s": baseline,
                "summary": summary,
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
