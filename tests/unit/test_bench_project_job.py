"""benchmarks/project_job.py compares like with like, or prints no ratio; it runs on a real
cluster only and says so without one.

MLflow's own ``_get_run_command`` (real, from the installed mlflow) is what turned the old
workload ``sh -c 'sleep 2.0; echo done'`` into ``sh -c "'sleep 2.0; echo done'"`` (exit 127).
"""

import pytest
from mlflow.projects.kubernetes import _get_run_command

from benchmarks import project_job as bench


def _run(command, job_state="Complete", run_status="FINISHED", latency=0.1):
    return {
        "run": 0,
        "job": "j",
        "command": command,
        "job_state": job_state,
        "run_status": run_status,
        "notice_latency_s": latency,
        "api_requests": 5,
    }


def test_mlflow_hands_the_workload_on_unchanged():
    assert _get_run_command([" ".join(bench.workload(2))]) == bench.workload(2) == ["sleep", "2.0"]


def test_the_old_workload_is_refused():
    quoted = _get_run_command(["sh -c 'sleep 2.0; echo done'"])
    assert quoted == ["sh", "-c", "'sleep 2.0; echo done'"]
    assert bench.problems("mlflow", [_run(quoted, "Failed", "FAILED")], 2.0)


def test_no_ratio_when_a_job_on_either_side_did_not_end_as_intended():
    good = [_run(bench.workload(1.0), latency=0.1)]
    report = {
        "module": good,
        "mlflow": [_run(bench.workload(1.0), latency=4.0)],
    }
    report["summary"] = {"module": bench.summary(report["module"]), "mlflow": bench.summary(report["mlflow"])}
    assert bench.ratio(report, 1.0) == (40.0, [])
    for broken in (
        _run(bench.workload(1.0), job_state="Failed"),
        _run(bench.workload(1.0), run_status="FAILED"),
        _run(["sleep", "9.0"]),
        _run(bench.workload(1.0), latency=None),
    ):
        for side in ("module", "mlflow"):
            spoiled = dict(report, **{side: [broken]})
            value, reasons = bench.ratio(spoiled, 1.0)
            assert value is None and reasons and reasons[0].startswith(side), (side, broken)


def test_without_a_cluster_it_stops_with_the_reason(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert bench.main(["--runs", "1"]) == 2
    said = capsys.readouterr().err
    assert "needs a real Kubernetes cluster" in said and "--kubeconfig" in said and "KUBECONFIG" in said
    # A kubeconfig that names a cluster nobody answers for: the probe's reason is in the message.
    dead = tmp_path / "kubeconfig"
    dead.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    assert bench.main(["--kubeconfig", str(dead)]) == 2
    said = capsys.readouterr().err
    assert "needs a real Kubernetes cluster" in said and f"{dead} does not answer" in said
    with pytest.raises(SystemExit):
        bench.target("")
