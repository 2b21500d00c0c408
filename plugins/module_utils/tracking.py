# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MLflow run bookkeeping through MlflowClient, with the tags MLflow's Kubernetes backend sets."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import getpass
import os
import re

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import TrackingError

# MLflow's client telemetry is on by default: it would report the operator's runs to a host
# outside the platform, and its thread sets and unsets an environment variable while other
# threads read os.environ (a KeyError on Python 3.11). Off, unless the environment says.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

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
        self._http_limits = HTTP_LIMITS if http_limits is None else http_limits

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

    def grant_experiment_permission(self, username, experiment_id, permission="EDIT", option="tracking_uri"):
        """``grant_experiment_permission`` with this tracker's URI and HTTP limits (True when changed)."""
        return grant_experiment_permission(
            LimitedClient(AuthApi(self.uri), self._http_limits), username, experiment_id, permission, option
        )

    def log_text(self, run_id, text, path=LOG_ARTIFACT):
        try:
            self.client.log_text(run_id, text, path)
        except MlflowException as exc:
            raise self._fail(exc, "store the log of run {0}".format(run_id)) from None


# MLflow's basic-auth REST API as MLflow 3.17 and 3.18 serve it (mlflow/server/auth/routes.py):
# the per-user grant of the unified permission API writes the user's own ``__user_<id>__`` role
# and answers RESOURCE_ALREADY_EXISTS when that role holds the resource already (the contract of
# MLflow 2's experiments/permissions/create); revoke takes it away. The per-resource endpoints of
# MLflow 2 (/api/2.0/mlflow/experiments/permissions/create, .../update) are no longer served.
AUTH_GRANT_PATH = "/api/3.0/mlflow/users/permissions/grant"
AUTH_REVOKE_PATH = "/api/3.0/mlflow/users/permissions/revoke"
AUTH_LIST_PATH = "/api/3.0/mlflow/users/permissions/list"
EXPERIMENT_PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE")
_USER_ROLE = re.compile(r"^__user_\d+__$")


class AuthApi(object):
    """The basic-auth requests a submitter makes, with the caller's own credentials
    (MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN, as MlflowClient takes them)."""

    def __init__(self, tracking_uri):
        self.uri = tracking_uri

    def request(self, path, method, **kwargs):
        """(status, parsed JSON or text) of one request; only a server that cannot be reached raises."""
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        response = http_request(get_default_host_creds(self.uri), path, method, raise_on_status=False, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        return response.status_code, body


def _explicit_experiment_grant(body, experiment_id):
    """The permission the user's own role grants on the experiment (None without one)."""
    rows = body.get("permissions") if isinstance(body, dict) else None
    for row in rows or []:
        if (
            _USER_ROLE.match(str(row.get("role_name") or ""))
            and row.get("resource_type") == "experiment"
            and str(row.get("resource_pattern")) == str(experiment_id)
        ):
            return row.get("permission")
    return None


def _grant_failure(status, body, username, experiment_id, permission):
    """What a refused grant means, for the person running the submission."""
    detail = body.get("message", body) if isinstance(body, dict) else str(body).strip()[:300]
    if status == 401:
        return "refused our credentials (401): set MLFLOW_TRACKING_USERNAME/PASSWORD in the environment"
    if status == 403:
        return (
            "refused to grant {0} on experiment {1} to {2!r} (403): the submitter must be an MLflow admin "
            "or hold MANAGE on the experiment".format(permission, experiment_id, username)
        )
    if status == 404 and not isinstance(body, dict):
        return "does not serve MLflow's basic-auth API (404 on {0}): is basic auth on?".format(AUTH_GRANT_PATH)
    if status == 404:
        return "has no MLflow user {0!r} (404): {1}".format(username, detail)
    return "failed to grant {0} on experiment {1} to {2!r} ({3}): {4}".format(
        permission, experiment_id, username, status, detail
    )


def _already_granted(status, body):
    return status == 400 and isinstance(body, dict) and body.get("error_code") == "RESOURCE_ALREADY_EXISTS"


def grant_experiment_permission(api, username, experiment_id, permission="EDIT", option="tracking_uri"):
    """Give MLflow user ``username`` ``permission`` on experiment ``experiment_id``, updating the
    permission its own role already holds there; True when it changed anything.

    ``api`` is an :class:`AuthApi` whose credentials are an admin's or hold MANAGE on the
    experiment (what MLflow asks of both grant and revoke). The user's explicit grants are read
    first (where the caller may read them), so an unchanged grant is reported unchanged. Another
    permission already granted is revoked and granted again: for that moment the user has the
    server's default permission. Failures are TrackingError naming ``option``.
    """
    if permission not in EXPERIMENT_PERMISSIONS:
        raise TrackingError(
            option, "permission must be one of {0}, got {1!r}".format(", ".join(EXPERIMENT_PERMISSIONS), permission)
        )
    grant = {
        "username": username,
        "resource_type": "experiment",
        "resource_id": str(experiment_id),
        "permission": permission,
    }
    try:
        status, body = api.request(AUTH_LIST_PATH, "GET", params={"username": username})
        if status == 200 and _explicit_experiment_grant(body, experiment_id) == permission:
            return False
        status, body = api.request(AUTH_GRANT_PATH, "POST", json=grant)
        if _already_granted(status, body):  # another permission: MLflow updates by revoke + grant
            revoke = dict((k, grant[k]) for k in ("username", "resource_type", "resource_id"))
            status, body = api.request(AUTH_REVOKE_PATH, "POST", json=revoke)
            if status == 200:
                status, body = api.request(AUTH_GRANT_PATH, "POST", json=grant)
    except MlflowException as exc:
        raise TrackingError(option, "the tracking server {0} is unreachable: {1}".format(api.uri, exc)) from None
    if status != 200:
        message = _grant_failure(status, body, username, experiment_id, permission)
        raise TrackingError(option, "the tracking server {0} {1}".format(api.uri, message))
    return True


__all__ = ["RunStatus", "TERMINAL", "Tracker", "run_tags", "AuthApi", "grant_experiment_permission"]
