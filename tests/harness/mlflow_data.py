"""Tracking data to log into an MLflow server and read back whole, for before/after comparisons.

``log_sample(client, label)`` logs two experiments with runs that carry params, tags, a metric
history of several steps, a deleted run and text artifacts (through the server's artifact
proxy); ``snapshot(client)`` reads back everything the server holds (experiments, every run of
every lifecycle stage, its params, tags, latest metrics, full metric histories and artifact
contents) as plain data, so two snapshots compare with ``==``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.tracking import MlflowClient


def log_sample(client: MlflowClient, label: str, runs_per_experiment: int = 3) -> list[str]:
    """Log the sample; returns the run ids."""
    run_ids = []
    for e in range(2):
        experiment_id = client.create_experiment(f"{label}-experiment-{e}", tags={"team": f"t{e}"})
        for r in range(runs_per_experiment):
            run = client.create_run(experiment_id, run_name=f"{label}-run-{e}-{r}", tags={"kind": "sample"})
            run_id = run.info.run_id
            client.log_batch(
                run_id,
                metrics=[Metric("loss", 1.0 / (step + 1) + r, 1_700_000_000_000 + step, step) for step in range(25)],
                params=[Param("alpha", str(0.1 * r)), Param("label", label), Param("unicode", "übergröße ✓")],
                tags=[RunTag("stage", f"s{r}"), RunTag("mlflow.note.content", f"note {label} {e} {r}")],
            )
            client.log_metric(run_id, "accuracy", 0.5 + 0.1 * r, step=0)
            client.log_text(run_id, f"artifact of {run_id}\n", "notes/readme.txt")
            client.log_dict(run_id, {"run": run_id, "r": r}, "config.json")
            client.set_terminated(run_id, "FINISHED")
            run_ids.append(run_id)
        client.delete_run(run_ids[-1])
    return run_ids


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found.update(_artifacts(client, run_id, item.path))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                local = client.download_artifacts(run_id, item.path, tmp)
                found[item.path] = Path(local).read_text()
    return found


def snapshot(client: MlflowClient) -> dict[str, Any]:
    """Everything the server holds, as plain data."""
    experiments = {}
    for experiment in client.search_experiments(view_type=ViewType.ALL):
        runs = {}
        for run in client.search_runs(
            [experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000, order_by=["attributes.start_time"]
        ):
            info = run.info
            runs[info.run_id] = {
                "name": info.run_name,
                "status": info.status,
                "lifecycle": info.lifecycle_stage,
                "start": info.start_time,
                "end": info.end_time,
                "artifact_uri": info.artifact_uri,
                "params": dict(run.data.params),
                "tags": dict(run.data.tags),
                "metrics": dict(run.data.metrics),
                "history": {
                    key: sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(info.run_id, key))
                    for key in run.data.metrics
                },
                "artifacts": _artifacts(client, info.run_id),
            }
        experiments[experiment.name] = {
            "id": experiment.experiment_id,
            "lifecycle": experiment.lifecycle_stage,
            "tags": dict(experiment.tags),
            "artifact_location": experiment.artifact_location,
            "runs": runs,
        }
    return experiments


def run_count(data: dict[str, Any]) -> int:
    return sum(len(e["runs"]) for e in data.values())
