# ruff: noqa: PLC0415 - imports are lazy: `python -m benchmarks --list` imports every benchmark module
"""mlflow_project_job beside MLflow's Kubernetes backend: how soon a Job's end is noticed, and API requests.

    .venv/bin/python -m benchmarks project_job [--runs 5] [--delay 1.0] [--kubeconfig PATH]

Target: the real cluster ``--kubeconfig`` or ``KUBECONFIG`` names (this machine's rig:
``export KUBECONFIG=$(python -m tests.harness.cluster kubeconfig)``); it must answer and have a
Ready node (tests/harness/cluster.py's ``probe``), else the benchmark stops with the reason. Real
kubelets run every pod: the busybox command sleeps ``--delay`` seconds. The benchmark works in a
namespace of its own, deleted at the end.

For each run, an independent observer (its own watch, its own client) records when the Job's
``Complete`` condition arrives; the figure is how much later the submitter's wait returns:

- ``module``: ``mlflow_project_job`` (its runner, in-process) with ``wait: true``;
- ``mlflow``: MLflow's own ``run_kubernetes_job`` + ``KubernetesSubmittedRun.wait()`` (5 s poll),
  on the same template and cluster. No Docker is needed for this part: the image is given.
  MLflow pins ``image@digest``: the digest is ``MLFLOW_K8S_BENCH_DIGEST`` when set, else the one
  the kubelet reported for the module's pods (their ``imageID``), so both sides run one image.

Both sides run the same workload, ``sleep <delay>`` in busybox, which needs no shell quoting:
MLflow shell-quotes every token of the command again (``_get_run_command``), so a command such
as ``sh -c 'sleep 2; echo done'`` reaches the container as ``sh -c "'sleep 2; echo done'"`` and
exits 127 at once. Every Job's container command, its end (Complete) and its run's status
(FINISHED) are checked; when a Job on either side did not end as intended, the benchmark
prints what went wrong and no ratio (exit code 1).

API requests are counted per submission at the kubernetes client's REST layer (every request
the submitter's thread sends: reads, creates, watches, deletes), for both. The full
``mlflow run --backend kubernetes`` (image build and push) runs only where a Docker engine
answers; otherwise the reason is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
COLLECTIONS = ROOT / ".collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

BUSYBOX = os.environ.get("MLFLOW_K8S_TEST_BUSYBOX_IMAGE", "busybox:1.37.0")
# MLflow pins image@digest: this one when set, else the digest the module's pods ran (image_digest()).
MLFLOW_DIGEST = os.environ.get("MLFLOW_K8S_BENCH_DIGEST", "")
BENCH_LABEL = {"mlflow-k8s.bench/project-job": "true"}
MLPROJECT = """\
name: bench-project
entry_points:
  main:
    parameters:
      seconds: {type: float, default: 1}
    command: 'sleep {seconds}'
"""
INTENDED = {"job": "Complete", "run": "FINISHED"}


def workload(delay):
    """The container command both sides must end up with."""
    return ["sleep", str(float(delay))]


class RequestCounter:
    """Counts REST requests per thread by wrapping RESTClientObject.request (the ApiClient's transport)."""

    def __init__(self):
        from kubernetes.client import rest

        self._rest = rest
        self._original = rest.RESTClientObject.request
        self.counts = {}
        self.thread = None
        self.calls = []

    def __enter__(self):
        counter = self

        def request(client, method, url, *args, **kwargs):
            if threading.get_ident() == counter.thread:
                counter.calls.append((method, url.split("?")[0].split("://", 1)[-1].split("/", 1)[-1]))
            return counter._original(client, method, url, *args, **kwargs)

        self._rest.RESTClientObject.request = request
        return self

    def __exit__(self, *exc):
        self._rest.RESTClientObject.request = self._original

    @contextlib.contextmanager
    def counting(self):
        self.thread = threading.get_ident()
        self.calls = []
        try:
            yield self
        finally:
            self.thread = None


class Observer(threading.Thread):
    """Watches the namespace's Jobs with its own client; records when each one's end arrives."""

    def __init__(self, kubeconfig, namespace):
        super().__init__(daemon=True)
        from tests.harness.cluster import new_api_client

        self.api = new_api_client(kubeconfig)
        self.namespace = namespace
        self.ended = {}
        self.states = {}  # name -> Complete or Failed
        self.commands = {}  # name -> the first container's command, as the API stored it
        self.stop = threading.Event()

    def run(self):
        from kubernetes import client, watch

        from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.job import job_state

        batch = client.BatchV1Api(self.api)
        while not self.stop.is_set():
            watcher = watch.Watch()
            try:
                for event in watcher.stream(batch.list_namespaced_job, self.namespace, timeout_seconds=5):
                    job = event.get("raw_object") or {}
                    name = (job.get("metadata") or {}).get("name")
                    if name and name not in self.commands:
                        containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
                        self.commands[name] = containers[0].get("command")
                    if name and name not in self.ended and job_state(job) in ("Complete", "Failed"):
                        self.ended[name] = time.monotonic()
                        self.states[name] = job_state(job)
                    if self.stop.is_set():
                        watcher.stop()
            except Exception as error:  # the namespace went away at the end, or the watch broke: renew
                if self.stop.is_set():
                    return
                print(f"  observer: {error}; watching again", flush=True)

    def wait_for(self, name, timeout=30.0):
        deadline = time.monotonic() + timeout
        while name not in self.ended and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.ended.get(name)


def _template(namespace):
    from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.job import DEFAULT_TEMPLATE

    template = json.loads(json.dumps(DEFAULT_TEMPLATE))
    template["metadata"]["namespace"] = namespace
    template["spec"]["template"].setdefault("metadata", {})["labels"] = dict(BENCH_LABEL)
    template["spec"]["ttlSecondsAfterFinished"] = 600
    return template


def bench_module(kubeconfig, namespace, project, tracking_uri, experiment_id, counter, observer, runs, delay):
    from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import runner as runner_utils

    results = []
    for index in range(runs):
        params = {
            "project_uri": str(project),
            "entry_point": "main",
            "parameters": {"seconds": delay},
            "run_name": "bench-" + uuid.uuid4().hex[:8],  # another identity, so another Job, each run
            "image": BUSYBOX,
            "namespace": namespace,
            "kubeconfig": kubeconfig,
            "tracking_uri": tracking_uri,
            "experiment_id": experiment_id,
            "job_template": _template(namespace),
            "wait": True,
            "wait_timeout": 300,
            "logs": False,
            "validate_certs": True,
            "propagation_policy": "Background",
        }
        with counter.counting():
            result = runner_utils.Runner(params).present()
            noticed = time.monotonic()
        ended = observer.wait_for(result["job_name"])
        calls = list(counter.calls)
        results.append(
            {
                "run": index,
                "job": result["job_name"],
                "state": result.get("state"),
                "job_state": observer.states.get(result["job_name"]),
                "run_status": result["run"]["status"],
                "command": observer.commands.get(result["job_name"]),
                "notice_latency_s": None if ended is None else round(noticed - ended, 4),
                "api_requests": len(calls),
                "api_calls": calls,
            }
        )
        print(
            f"  module #{index}: {result.get('state')}, noticed {results[-1]['notice_latency_s']} s after the end, "
            f"{len(calls)} API requests",
            flush=True,
        )
    return results


def image_digest(core, namespace):
    """The digest the kubelet reported for BUSYBOX in the namespace's pods (``imageID``), or None."""
    for pod in core.list_namespaced_pod(namespace).items:
        for status in pod.status.container_statuses or []:
            if "@sha256:" in (status.image_id or ""):
                return status.image_id.rsplit("@", 1)[1]
    return None


def bench_mlflow(kubeconfig, namespace, tracking_uri, experiment_id, counter, observer, runs, delay, digest):
    from kubernetes.config import kube_config
    from mlflow.entities import RunStatus
    from mlflow.projects import kubernetes as mlflow_k8s
    from mlflow.tracking import MlflowClient

    # MLflow loads "the" kubeconfig (KUBECONFIG as read when kubernetes was imported, or ~/.kube/config).
    os.environ["KUBECONFIG"] = kubeconfig
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = kubeconfig
    client = MlflowClient(tracking_uri)
    shim_pretty()
    results = []
    for index in range(runs):
        active = client.create_run(experiment_id)
        env = {
            "MLFLOW_RUN_ID": active.info.run_id,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_EXPERIMENT_ID": experiment_id,
        }
        command = [" ".join(workload(delay))]  # what get_entry_point_command hands on: one command string
        with counter.counting():
            submitted = mlflow_k8s.run_kubernetes_job(
                "bench-mlflow", active, BUSYBOX.split("@")[0], digest, command, env, None, _template(namespace)
            )
            submitted.wait()
            noticed = time.monotonic()
        ended = observer.wait_for(submitted._job_name)
        calls = list(counter.calls)
        state = RunStatus.to_string(submitted.get_status())
        results.append(
            {
                "run": index,
                "job": submitted._job_name,
                "state": state,
                "job_state": observer.states.get(submitted._job_name),
                "run_status": state,
                "command": observer.commands.get(submitted._job_name),
                "notice_latency_s": None if ended is None else round(noticed - ended, 4),
                "api_requests": len(calls),
                "api_calls": calls,
            }
        )
        print(
            f"  mlflow #{index}: {results[-1]['state']}, noticed {results[-1]['notice_latency_s']} s after the end, "
            f"{len(calls)} API requests",
            flush=True,
        )
    return results


PRETTY_NOTE = (
    "MLflow 3.17 calls BatchV1Api with pretty=True, which the kubernetes client 37 refuses (pydantic wants a "
    "string): `mlflow run --backend kubernetes` fails before creating the Job. For this measurement only, "
    "pretty=True is passed on as 'true'; MLflow's own code does everything else."
)


def shim_pretty():
    """SHIM (benchmark only): let MLflow's pretty=True through the kubernetes 37 client as 'true'."""
    from kubernetes import client

    for name in ("create_namespaced_job", "read_namespaced_job_status", "delete_namespaced_job"):
        original = getattr(client.BatchV1Api, name)
        if getattr(original, "_pretty_shim", False):
            continue

        def method(self, *args, _original=original, **kwargs):
            if kwargs.get("pretty") is True:
                kwargs["pretty"] = "true"
            return _original(self, *args, **kwargs)

        method._pretty_shim = True
        setattr(client.BatchV1Api, name, method)


def docker_reason():
    if shutil.which("docker") is None:
        return "no docker CLI on this machine: `mlflow run --backend kubernetes` (build + push) not measured"
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as error:
        return f"no Docker engine answers ({error}): `mlflow run --backend kubernetes` (build + push) not measured"
    return None


def problems(side, results, delay):
    """Why ``side``'s runs are not the intended workload ending as intended ([] when they are)."""
    found = []
    for r in results:
        wrong = []
        if r.get("command") != workload(delay):
            wrong.append(f"container command {r.get('command')!r}, not {workload(delay)!r}")
        if r.get("job_state") != INTENDED["job"]:
            wrong.append(f"Job ended {r.get('job_state')}, not {INTENDED['job']}")
        if r.get("run_status") != INTENDED["run"]:
            wrong.append(f"run {r.get('run_status')}, not {INTENDED['run']}")
        if r.get("notice_latency_s") is None:
            wrong.append("the observer never saw the Job end")
        if wrong:
            found.append(f"{side} #{r['run']} ({r['job']}): " + "; ".join(wrong))
    return found


def ratio(report, delay):
    """MLflow's median notice latency over the module's, or None (with the reasons) when not comparable."""
    reasons = problems("module", report["module"], delay) + problems("mlflow", report["mlflow"], delay)
    if reasons or not report["mlflow"]:
        return None, reasons
    module = report["summary"]["module"]["notice_latency_s"]["median"]
    mlflow = report["summary"]["mlflow"]["notice_latency_s"]["median"]
    if not module:
        return None, ["the module's median latency is 0: no ratio"]
    return round(mlflow / module, 1), []


def summary(results):
    latencies = [r["notice_latency_s"] for r in results if r["notice_latency_s"] is not None]
    requests = [r["api_requests"] for r in results]
    return {
        "runs": len(results),
        "notice_latency_s": {
            "median": round(statistics.median(latencies), 4) if latencies else None,
            "max": max(latencies) if latencies else None,
        },
        "api_requests_per_submission": {"median": statistics.median(requests), "max": max(requests)},
    }


NO_CLUSTER = (
    "project_job: needs a real Kubernetes cluster with a Ready node: give --kubeconfig or set KUBECONFIG "
    "(this machine's rig: export KUBECONFIG=$(.venv/bin/python -m tests.harness.cluster kubeconfig))"
)


def target(kubeconfig):
    """``(kubeconfig, probe detail)`` of a usable cluster; SystemExit with the reason otherwise."""
    from tests.harness.cluster import probe

    if not kubeconfig:
        raise SystemExit(NO_CLUSTER)
    ok, detail = probe(kubeconfig)
    if not ok:
        raise SystemExit(f"{NO_CLUSTER}; {detail}")
    return kubeconfig, detail


def main(argv):
    parser = argparse.ArgumentParser(prog="benchmarks project_job", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds each pod runs")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", ""))
    parser.add_argument("--skip-mlflow", action="store_true", help="measure the module only")
    args = parser.parse_args(argv)

    from kubernetes import client as k8s
    from mlflow.tracking import MlflowClient

    from tests.harness.cluster import new_api_client

    try:
        kubeconfig, detail = target(args.kubeconfig)
    except SystemExit as stop:  # returned, not raised: `python -m benchmarks` goes on to the next one
        print(stop.code, file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-project-job-"))
    project = work / "bench-project"
    project.mkdir()
    (project / "MLproject").write_text(MLPROJECT)
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    experiment_id = MlflowClient(tracking_uri).create_experiment("bench", artifact_location=str(work / "artifacts"))
    report = {
        "benchmark": "project_job",
        "started": datetime.datetime.now(datetime.UTC).isoformat(),
        "target": json.loads(detail),
    }
    api = new_api_client(kubeconfig)
    core = k8s.CoreV1Api(api)
    namespace = f"bench-project-job-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {"mlflow-k8s.bench/project-job": "true"}}})
    try:
        with RequestCounter() as counter:
            observer = Observer(kubeconfig, namespace)
            observer.start()
            print(
                f"project_job: {report['target']['version']} at {kubeconfig} (real kubelets), {args.runs} runs, "
                f"pods run {args.delay} s",
                flush=True,
            )
            report["module"] = bench_module(
                kubeconfig, namespace, project, tracking_uri, experiment_id, counter, observer, args.runs, args.delay
            )
            digest = MLFLOW_DIGEST or image_digest(core, namespace)
            report["mlflow_image"] = f"{BUSYBOX.split('@')[0]}@{digest}"
            if args.skip_mlflow:
                report["mlflow"] = []
            elif not digest:
                report["mlflow_skipped"] = (
                    f"no digest for {BUSYBOX}: the kubelet reported none; set MLFLOW_K8S_BENCH_DIGEST"
                )
                report["mlflow"] = []
            else:
                report["mlflow_note"] = PRETTY_NOTE
                report["mlflow"] = bench_mlflow(
                    kubeconfig,
                    namespace,
                    tracking_uri,
                    experiment_id,
                    counter,
                    observer,
                    args.runs,
                    args.delay,
                    digest,
                )
            observer.stop.set()
    finally:
        core.delete_namespace(namespace)
        api.close()
        shutil.rmtree(work, ignore_errors=True)
    report["docker"] = docker_reason() or "available (full mlflow run not automated yet)"
    report["summary"] = {"module": summary(report["module"])}
    if report["mlflow"]:
        report["summary"]["mlflow"] = summary(report["mlflow"])
    print(json.dumps(report["summary"], indent=2))
    report["ratio_mlflow_over_module"], report["refused"] = ratio(report, args.delay)
    if report["refused"]:
        print("project_job: NO RATIO: a Job did not run the intended workload to its intended end:")
        for reason in report["refused"]:
            print(f"  {reason}")
    elif report["ratio_mlflow_over_module"] is not None:
        print(
            f"project_job: MLflow notices a Job's end {report['ratio_mlflow_over_module']}x later than the module "
            f"(medians; every Job ran {workload(args.delay)} to {INTENDED['job']})"
        )
    print(f"project_job: {report['docker']}")
    if report.get("mlflow_note"):
        print(f"project_job: note: {report['mlflow_note']}")
    if report.get("mlflow_skipped"):
        print(f"project_job: mlflow side skipped: {report['mlflow_skipped']}")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    out = results / f"project_job-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"project_job: results in {out.relative_to(ROOT)}")
    return 1 if report["refused"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
