# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The third way a project's code reaches its pod: as an artifact of its run (the default).

When neither ``image`` nor ``build`` is given, the pod runs ``docker_env.image`` (or
``base_image``) itself. ``SnapshotDelivery`` is everything the runner does for that, in the
order the runner calls it:

1. at plan time (offline): pack the project (snapshot.py), with the size limit;
2. before the run exists: the pod must reach the tracking server over HTTP, and the
   experiment's artifacts must be the server's proxied ones (``mlflow-artifacts:``);
3. after the run exists, before the Job: upload the archive and tag the hash (a failure here
   fails the call: the runner marks the run FAILED and creates no Job);
4. render: the init container, the emptyDir and the working directory (snapshot_job.py).

``from_run_id`` (``prepare_from_run``) fetches an earlier run's archive, checks it against the
run's hash tag, unpacks it as the project to load (no checkout), and uploads those same bytes to
the new run, so every run holds the code it ran. That archive is untrusted (anyone who can write
to MLflow wrote it): it is unpacked within ``snapshot_max_mb`` and snapshot_fetch.py's limits.

The init container is told the byte limit it unpacks within (``MLFLOW_SNAPSHOT_MAX_BYTES``,
``snapshot_max_mb`` in bytes, ``0`` when lifted), so a limit raised for a big project holds in
the pod too.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import snapshot, snapshot_fetch, snapshot_job
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import TemplateError, TrackingError

FROM_RUN_TAG = "mlops.mlflow_k8s.code_from_run"
PLANNED_URL_RUN = "<run id>"
# Tags of the earlier run that say where its code came from; copied to a re-run.
SOURCE_TAGS = ("mlflow.source.name", "mlflow.source.git.commit", "mlflow.source.git.repoURL")


class FromRun(object):
    """An earlier run's snapshot, fetched and unpacked on the controller (``from_run_id``)."""

    def __init__(self, run_id, snap, project_dir, tags, workdir):
        self.run_id = run_id
        self.snapshot = snap
        self.project_dir = project_dir
        self.tags = tags
        self.workdir = workdir

    def cleanup(self):
        snapshot.remove(self.workdir)


def prepare_from_run(tracker, run_id, max_mb=snapshot.DEFAULT_MAX_MB):
    """Download, check and unpack the snapshot of ``run_id`` within ``max_mb`` (``snapshot_max_mb``).

    A FromRun (clean it up after).
    """
    workdir = snapshot.tempdir()
    try:
        snap, project_dir, run = snapshot.download_snapshot(tracker.client, run_id, workdir, max_mb)
    except Exception as exc:
        snapshot.remove(workdir)
        if getattr(exc, "option", None):
            raise
        raise TrackingError(
            "from_run_id", "cannot fetch the code of run {0} from {1}: {2}".format(run_id, tracker.uri, exc)
        ) from None
    tags = dict((k, v) for k, v in run.data.tags.items() if k in SOURCE_TAGS)
    return FromRun(run_id, snap, project_dir, tags, workdir)


class SnapshotDelivery(object):
    """The snapshot way for one submission (see the module docstring)."""

    def __init__(self, project, params, base_image, secret=None, from_run=None):
        self.base_image = base_image
        self.secret = secret
        self.from_run = from_run
        self.workdir = None
        self.max_mb = params.get(snapshot.MAX_SIZE_OPTION, snapshot.DEFAULT_MAX_MB)
        if from_run is not None:
            self.snapshot = from_run.snapshot
        else:
            self.workdir = snapshot.tempdir()
            try:
                self.snapshot = snapshot.pack(project.directory, self.workdir, self.max_mb)
            except BaseException:
                self.cleanup()
                raise
        self.url = None

    def cleanup(self):
        snapshot.remove(self.workdir)
        self.workdir = None

    def tags(self):
        """Tags the run gets at creation (the hash tag comes with the upload)."""
        if self.from_run is None:
            return {}
        tags = dict(self.from_run.tags)
        tags[FROM_RUN_TAG] = self.from_run.run_id
        return tags

    @staticmethod
    def check_job_tracking_uri(job_tracking_uri):
        if not str(job_tracking_uri or "").startswith(("http://", "https://")):
            raise TemplateError(
                "job_tracking_uri",
                "the pod fetches the project's code from the tracking server over HTTP, and {0!r} is not an "
                "http(s) URL; give the server's in-cluster URL (or image / build: true)".format(job_tracking_uri),
            )

    def check_store(self, tracker, experiment_id, job_tracking_uri):
        """Before the run exists: the pod can reach the server, and the server proxies the run's artifacts."""
        self.check_job_tracking_uri(job_tracking_uri)
        if experiment_id is None:  # created by this call (check mode): it gets the server's default root
            return
        try:
            location = tracker.client.get_experiment(str(experiment_id)).artifact_location
        except Exception as exc:
            raise TrackingError("tracking_uri", "cannot read experiment {0}: {1}".format(experiment_id, exc)) from None
        if snapshot.artifact_url(job_tracking_uri, location) is None:
            raise TrackingError(
                "tracking_uri",
                "experiment {0} keeps its artifacts at {1}, which the tracking server does not proxy; the code "
                "travels as a run artifact through the server's artifact API (mlflow server --serve-artifacts, "
                "as the mlflow_server role runs it): use such an experiment, or image / build: true".format(
                    experiment_id, location
                ),
            )

    def planned_url(self, job_tracking_uri, experiment_id):
        return snapshot.artifact_url(
            job_tracking_uri, "mlflow-artifacts:/{0}/{1}/artifacts".format(experiment_id or "<experiment>", "RUNID")
        ).replace("RUNID", PLANNED_URL_RUN)

    def upload(self, tracker, run_id, job_tracking_uri):
        """Log the archive to the run and tag its hash; the URL the init container fetches it from."""
        try:
            snapshot.log_snapshot(tracker.client, run_id, self.snapshot)
            artifact_uri = tracker.client.get_run(run_id).info.artifact_uri
        except Exception as exc:
            raise TrackingError(
                "tracking_uri",
                "uploading the project's code ({0:.1f} MB) to run {1} failed: {2}".format(
                    self.snapshot.size / 1e6, run_id, exc
                ),
            ) from None
        url = snapshot.artifact_url(job_tracking_uri, artifact_uri)
        if url is None:
            raise TrackingError(
                "tracking_uri",
                "run {0} keeps its artifacts at {1}, which the server does not proxy".format(run_id, artifact_uri),
            )
        self.url = url
        return url

    def apply(self, manifest, url):
        """The Job with the init container (snapshot_job.py), told the byte limit it unpacks within."""
        job = snapshot_job.add_code_delivery(manifest, url, self.snapshot.sha256, self.secret)
        limit = {"name": snapshot_fetch.MAX_BYTES_ENV, "value": str(snapshot.max_bytes(self.max_mb) or 0)}
        for container in job["spec"]["template"]["spec"]["initContainers"]:
            if container["name"] == snapshot_job.INIT_CONTAINER:
                container["env"].append(limit)
        return job

    def as_dict(self, url, uploaded):
        out = self.snapshot.as_dict()
        out.update(
            {
                "url": url,
                "uploaded": uploaded,
                "base_image": self.base_image,
                "from_run_id": self.from_run.run_id if self.from_run else None,
            }
        )
        return out
