# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MLflow run bookkeeping through MlflowClient, with the tags MLflow's Kubernetes backend sets."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import getpass
import os

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import TrackingError

try:
    from mlflow.entities import Param, RunStatus
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from mlflow.utils import mlflow_tags as tags_
    from mlflow.utils.git_utils import get_git_commit, get_git_repo_url

    HAS_MLFLOW = True
    MLFLOW_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported through missing_required_lib
    HAS_MLFLOW = False
    MLFLOW_IMPORT_ERROR = exc
    MlflowException = Exception

TERMINAL = ("FINISHED", "FAILED", "KILLED")
JOB_NAME_TAG = "mlops.mlflow_k8s.job_name"
JOB_NAMESPACE_TAG = "mlops.mlflow_k8s.job_namespace"
IDENTITY_TAG = "mlops.mlflow_k8s.identity"
LOG_ARTIFACT = "kubernetes/job.log"


# MLflow retries an unreachable server for minutes by default; a module should say so sooner.
# The user's own MLFLOW_HTTP_REQUEST_* settings win.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class LimitedClient(object):
    """An MlflowClient whose calls run with ``limits`` as MLflow's HTTP retry settings.

    MLflow 3 reads them from the environment on every request (rest_utils.http_request:
    RestStore and the artifact repository pass no retry arguments), so there is no client
    argument for them: each call sets the ones the user has not set, and puts the
    environment back when it returns. Nothing outside the client's calls sees them.
    """

    def __init__(self, client, limits):
        self._client = client
        self._limits = dict(limits)

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            added = [key for key in self._limits if key not in os.environ]
            os.environ.update((key, self._limits[key]) for key in added)
            try:
                return attribute(*args, **kwargs)
            finally:
                for key in added:
                    os.environ.pop(key, None)

        call.__name__ = name
        return call


def run_tags(project_dir, entry_point, *, run_name=None, image_uri=None, image_digest=None, user=None, source=None):
    """The tags ``mlflow run --backend kubernetes`` sets on its run (``source``: a remote project's URI)."""
    tags = {
        tags_.MLFLOW_USER: user or _user(),
        tags_.MLFLOW_SOURCE_NAME: source or source_name(project_dir),
        tags_.MLFLOW_SOURCE_TYPE: "PROJECT",
        tags_.MLFLOW_PROJECT_ENTRY_POINT: entry_point,
        tags_.MLFLOW_PROJECT_ENV: "docker",
        tags_.MLFLOW_PROJECT_BACKEND: "kubernetes",
    }
    commit = get_git_commit(project_dir)
    if commit:
        tags[tags_.MLFLOW_GIT_COMMIT] = commit
        repo_url = get_git_repo_url(project_dir)
        if repo_url:
            tags[tags_.MLFLOW_GIT_REPO_URL] = repo_url
    if run_name:
        tags[tags_.MLFLOW_RUN_NAME] = run_name
    if image_uri:
        tags[tags_.MLFLOW_DOCKER_IMAGE_URI] = image_uri
    if image_digest:
        tags[tags_.MLFLOW_DOCKER_IMAGE_ID] = image_digest
    return tags


def source_name(project_dir):
    """``file://<repo>#<subdir>`` inside a git work tree, else the absolute path: MLflow's source name."""
    path = os.path.abspath(project_dir)
    try:
        from git import Repo

        root = Repo(path, search_parent_directories=True).working_tree_dir
    except Exception:  # not a repository, or no git executable: MLflow falls back to the path too
        return path
    relative = os.path.relpath(path, root)
    url = "file://" + root
    return url if relative == "." else url + "#" + relative.replace(os.sep, "/")


def _user():
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def run_dict(run):
    info = run.info
    return {
        "run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "status": info.status,
        "run_name": info.run_name,
        "artifact_uri": info.artifact_uri,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "tags": dict(run.data.tags),
        "params": dict(run.data.params),
    }


class Tracker(object):
    """One tracking server; every MlflowException becomes a TrackingError naming an option."""

    def __init__(self, tracking_uri, http_limits=None):
        if not tracking_uri:
            raise TrackingError("tracking_uri", "no tracking URI: set tracking_uri or MLFLOW_TRACKING_URI")
        self.uri = tracking_uri
        self.client = LimitedClient(
            MlflowClient(tracking_uri=tracking_uri), HTTP_LIMITS if http_limits is None else http_limits
        )

    def _fail(self, exc, action, option="tracking_uri"):
        return TrackingError(option, "the tracking server {0} failed to {1}: {2}".format(self.uri, action, exc))

    def check(self):
        """Fail early, naming tracking_uri, when the server does not answer /health."""
        if not self.uri.startswith(("http://", "https://")):
            return
        import requests

        try:
            response = requests.get(self.uri.rstrip("/") + "/health", timeout=10)
        except requests.RequestException as exc:
            raise TrackingError(
                "tracking_uri", "the tracking server {0} is unreachable: {1}".format(self.uri, exc)
            ) from None
        if response.status_code in (401, 403):
            raise TrackingError(
                "tracking_uri",
                "the tracking server {0} refused us ({1}); set MLFLOW_TRACKING_USERNAME/PASSWORD or "
                "MLFLOW_TRACKING_TOKEN in the environment".format(self.uri, response.status_code),
            )
        if response.status_code >= 400:
            raise TrackingError(
                "tracking_uri",
                "the tracking server {0} answered {1} on /health".format(self.uri, response.status_code),
            )

    def experiment_id(self, experiment_name=None, experiment_id=None, create=True):
        """The experiment's id; a named experiment is created when missing (as ``mlflow run`` does).

        Returns None when it would be created but ``create`` is false (check mode).
        """
        try:
            if experiment_id is not None:
                experiment = self.client.get_experiment(str(experiment_id))
                return experiment.experiment_id
            if experiment_name:
                experiment = self.client.get_experiment_by_name(experiment_name)
                if experiment is not None:
                    if experiment.lifecycle_stage == "deleted":
                        raise TrackingError(
                            "experiment_name",
                            "experiment {0!r} is deleted; restore it or pick another name".format(experiment_name),
                        )
                    return experiment.experiment_id
                if not create:
                    return None
                return self.client.create_experiment(experiment_name)
            return "0"
        except MlflowException as exc:
            option = "experiment_id" if experiment_id is not None else "experiment_name"
            raise self._fail(exc, "resolve the experiment", option) from None

    def create_run(self, experiment_id, tags, params, run_name=None):
        """Create the run with MLflow's tags and log its parameters in one batch."""
        try:
            run = self.client.create_run(experiment_id=experiment_id, tags=tags, run_name=run_name)
        except MlflowException as exc:
            raise self._fail(exc, "create the run") from None
        if params:
            try:
                self.client.log_batch(run.info.run_id, params=[Param(str(k), str(v)) for k, v in params])
            except MlflowException as exc:
                self.terminate(run.info.run_id, "FAILED")  # no run left RUNNING that nothing will end
                raise self._fail(exc, "log the parameters", "parameters") from None
        return run.info.run_id

    def set_tags(self, run_id, tags):
        try:
            for key, value in tags.items():
                self.client.set_tag(run_id, key, value)
        except MlflowException as exc:
            raise self._fail(exc, "tag run {0}".format(run_id)) from None

    def get_run(self, run_id):
        try:
            return run_dict(self.client.get_run(run_id))
        except MlflowException as exc:
            raise self._fail(exc, "read run {0}".format(run_id), "run_id") from None

    def terminate(self, run_id, status, end_time=None):
        """Set a terminal status unless the run already has one; True when it changed anything.

        ``end_time``: epoch milliseconds the run ended (the Job's end); None means now.
        """
        if status not in TERMINAL:
            raise ValueError(status)
        try:
            current = self.client.get_run(run_id).info.status
            if current in TERMINAL:
                return False
            self.client.set_terminated(run_id, status=status, end_time=end_time)
            return True
        except MlflowException as exc:
            raise self._fail(exc, "mark run {0} {1}".format(run_id, status)) from None

    def log_text(self, run_id, text, path=LOG_ARTIFACT):
        try:
            self.client.log_text(run_id, text, path)
        except MlflowException as exc:
            raise self._fail(exc, "store the log of run {0}".format(run_id)) from None


__all__ = ["RunStatus", "TERMINAL", "Tracker", "run_tags"]
