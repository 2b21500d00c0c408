# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Step 2 of a submission: the Kubernetes side, one client for Jobs, their pods and logs.

Every request goes through :meth:`JobsClient.call`, the one place where the client's
exceptions become errors a person can act on (a ClusterError naming the auth option or the
namespace, a TemplateError naming the template option when the API server refuses the Job).
Results are plain dicts, as the API sends them. The runner's unit tests stand in for this
class with a thin fake of the same methods (tests/unit/test_runner.py).

Two answers are not errors: a Job name that is taken (409 AlreadyExists) makes ``create``
return None and ``dry_run`` False, since the API server is what decides which of two
submissions of one identity gets its Job (runner.py); and the wait rides out the API server
going away until its timeout (watch.py), warning once per outage.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import k8s_client, watch
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ClusterError, TemplateError


class JobsClient(object):
    """Jobs, pods and logs of one cluster (``auth``: the shared auth options; ``context`` overrides).

    ``server``: the API server's URL, as the runs record where their Job is. ``clock`` and
    ``sleep``: the wait's (monotonic seconds).
    """

    def __init__(self, auth, context=None, propagation_policy="Foreground", warn=None):
        from kubernetes import client as k8s

        self.auth = dict(auth)
        if context and not self.auth.get("context"):
            self.auth["context"] = context
        self.propagation_policy = propagation_policy or "Foreground"
        self.warn = warn or (lambda msg: None)
        self.clock = time.monotonic
        self.sleep = time.sleep
        api = k8s_client.api_client(self.auth)
        self.server = api.configuration.host
        self.batch = k8s.BatchV1Api(api)
        self.core = k8s.CoreV1Api(api)

    # -- the one error translation ---------------------------------------------------------
    def call(self, action, func, *args, **kwargs):
        """``func(*args, **kwargs)`` with the request timeout; API errors become ProjectJobErrors.

        Keyword-only controls (removed before the call): ``namespace`` (a 404 then means the
        namespace is missing), ``invalid_option`` (a 400/422 or a client-side model error is
        that option's fault), ``allow`` (statuses that return None instead of failing),
        ``request_timeout`` (False for helpers that set their own, such as the watch). The
        ClusterError of an API error carries its HTTP status as ``details["status"]`` (None when
        the API server did not answer): whether a create may have happened depends on it.
        """
        namespace = kwargs.pop("namespace", None)
        invalid_option = kwargs.pop("invalid_option", None)
        allow = kwargs.pop("allow", ())
        if kwargs.pop("request_timeout", True):
            kwargs.setdefault("_request_timeout", k8s_client.REQUEST_TIMEOUT)
        try:
            return func(*args, **kwargs)
        except ClusterError:
            raise
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status in allow:
                return None
            if invalid_option and type(exc).__name__ == "ValidationError":  # the client's own model check
                raise TemplateError(invalid_option, "the rendered Job is not a valid Job: {0}".format(exc)) from None
            if invalid_option and status in (400, 422):
                raise TemplateError(
                    invalid_option, "the API server rejects the rendered Job: {0}".format(k8s_client._reason(exc))
                ) from None
            if k8s_client.is_api_error(exc):
                error = k8s_client.describe_api_error(exc, self.auth, action, namespace)
                error.details["status"] = status
                raise error from None
            raise

    def _plain(self, obj):
        return self.batch.api_client.sanitize_for_serialization(obj)

    # -- namespace and Jobs ----------------------------------------------------------------
    def check_namespace(self, namespace):
        """Fail naming ``namespace`` when it does not exist (a user who may not read Namespaces passes)."""
        self.call("read namespace " + namespace, self.core.read_namespace, namespace, namespace=namespace, allow=(403,))

    def dry_run(self, namespace, manifest, option):
        """Server-side dry run of the Job: the API's own validation and admission, nothing stored.

        True when the Job would be created; False when a Job of its name exists already.
        """
        answer = self.call(
            "validate the Job (server-side dry run)",
            self.batch.create_namespaced_job,
            namespace,
            manifest,
            dry_run="All",
            namespace=namespace,
            invalid_option=option,
            allow=(409,),
        )
        return answer is not None

    def create(self, namespace, manifest, option):
        """The created Job, or None when a Job of its name exists already (409 AlreadyExists)."""
        created = self.call(
            "create Job in namespace " + namespace,
            self.batch.create_namespaced_job,
            namespace,
            manifest,
            namespace=namespace,
            invalid_option=option,
            allow=(409,),
        )
        return None if created is None else self._plain(created)

    def list(self, namespace, selector):
        """The Jobs ``selector`` matches, newest first."""
        result = self.call(
            "list Jobs in namespace " + namespace, self.batch.list_namespaced_job, namespace, label_selector=selector
        )
        items = [self._plain(j) for j in result.items]
        return sorted(items, key=lambda j: j["metadata"].get("creationTimestamp") or "", reverse=True)

    def read(self, namespace, name):
        """The Job, or None when it does not exist."""
        job = self.call("read Job " + name, self.batch.read_namespaced_job, name, namespace, allow=(404,))
        return None if job is None else self._plain(job)

    def delete(self, namespace, name):
        """Delete the Job with its pods; False when it was already gone."""
        from kubernetes import client as k8s

        body = k8s.V1DeleteOptions(propagation_policy=self.propagation_policy)
        done = self.call(
            "delete Job " + name, self.batch.delete_namespaced_job, name, namespace, body=body, allow=(404,)
        )
        return done is not None

    def wait(self, namespace, name, timeout, job=None):
        """watch.wait_for_job's JobOutcome ``(job, state, timed_out)`` (with ``problem``, ``log``,
        ``progress`` when a pod is stuck) once the Job ended, was deleted, a pod of it is stuck for
        good, or ``timeout`` passed.

        The API server failing meanwhile is retried (watch.py); a warning says so at the first
        failure of each outage. A ClusterError when it still fails at ``timeout``, or refuses us.
        """

        def retrying(error, attempt, delay):
            if attempt == 1:
                self.warn(
                    "the Kubernetes API failed while waiting for Job {0} ({1}); the Job runs on, the wait "
                    "tries again until wait_timeout".format(name, _short(error))
                )

        return self.call(
            "watch Job {0} (tried again until wait_timeout, {1} s)".format(name, timeout),
            watch.wait_for_job,
            self.batch,
            namespace,
            name,
            timeout,
            job=job,
            core=self.core,
            clock=self.clock,
            sleep=self.sleep,
            retrying=retrying,
            request_timeout=False,
        )

    # -- pods ------------------------------------------------------------------------------
    def logs(self, namespace, name, container):
        """The newest pod's log; '' (and a warning) when it cannot be read."""
        try:
            return watch.pod_log(self.core, namespace, name, container=container)
        except Exception as exc:
            self.warn("could not read the log of Job {0}: {1}".format(name, exc))
            return ""

    def finished_at(self, namespace, name):
        """When the newest pod's last container terminated (RFC 3339), or None."""
        try:
            pods = watch.job_pods(self.core, namespace, name)
        except Exception as exc:
            self.warn("could not read the pods of Job {0}: {1}".format(name, exc))
            return None
        for pod in pods:
            statuses = (pod.status.container_statuses if pod.status else None) or []
            ended = [s.state.terminated for s in statuses if s.state and s.state.terminated]
            times = [t.finished_at for t in ended if t.finished_at]
            if times:
                return self._plain(max(times))
        return None


def _short(error):
    """An API error in one line: its status and reason, or its type and text."""
    status = getattr(error, "status", None)
    if status:
        return "{0} {1}".format(status, getattr(error, "reason", "") or "").strip()
    return "{0}: {1}".format(type(error).__name__, error)[:200]
