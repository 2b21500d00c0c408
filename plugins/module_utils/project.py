# -*- coding: utf-8 -*-
# Copyright: (c) 2026, mlops.mlflow_k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""MLproject loading, parameter validation and command rendering, with MLflow's semantics.

MLflow (mlflow/projects/_project_spec.py) is the reference; tests compare every result here
with MLflow's own on the same projects. Where we go further (type checks of float/int
parameters, a command as an argument list) it is said below.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shlex
import subprocess

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ProjectError

try:
    from urllib.parse import urlparse
except ImportError:  # pragma: no cover
    from urlparse import urlparse

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover
    HAS_YAML = False

MLPROJECT_FILE_NAME = "mlproject"
ENV_FIELDS = ("docker_env", "conda_env", "python_env")
PARAMETER_TYPES = ("float", "int", "string", "path", "uri")
# Extra parameters become `--name value` and an MLflow param name: no quoting, MLflow's name rules.
_EXTRA_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/:]*$")


class Parameter(object):
    """One parameter of an entry point: ``type`` (default ``string``) and ``default``."""

    def __init__(self, name, spec):
        self.name = name
        if isinstance(spec, str):
            self.type = spec
            self.default = None
        elif isinstance(spec, dict):
            self.type = spec.get("type", "string")
            self.default = spec.get("default")
        else:
            raise ProjectError(
                "project_uri",
                "parameter {0!r} in the MLproject must be a type name or a mapping, not {1!r}".format(name, spec),
            )

    @property
    def required(self):
        return self.default is None

    def check(self, value):
        """Our type check, beyond MLflow's (which checks only ``uri``): raise on a mistyped value."""
        option = "parameters.{0}".format(self.name)
        if self.type == "uri":
            if not urlparse(str(value)).scheme:
                raise ProjectError(option, "expected a URI with a scheme (s3://, file://...), got {0!r}".format(value))
        elif self.type in ("float", "int"):
            if isinstance(value, bool):
                raise ProjectError(option, "expected {0}, got the boolean {1!r}".format(self.type, value))
            try:
                if self.type == "int":
                    if isinstance(value, float) and not value.is_integer():
                        raise ValueError(value)
                    if not isinstance(value, (int, float)):
                        int(str(value).strip())  # "7" passes, "7.5" and "seven" do not
                else:
                    float(value)
            except (TypeError, ValueError):
                raise ProjectError(option, "expected {0}, got {1!r}".format(self.type, value)) from None
        elif isinstance(value, (dict, list)):
            raise ProjectError(option, "expected a scalar value, got {0!r}".format(value))


class EntryPoint(object):
    def __init__(self, name, parameters, command):
        self.name = name
        if not isinstance(parameters, dict):
            raise ProjectError("project_uri", "parameters of entry point {0!r} must be a mapping".format(name))
        self.parameters = dict((str(k), Parameter(str(k), v)) for k, v in parameters.items())
        self.command = command

    def compute_parameters(self, user_parameters):
        """(params, extra_params) as MLflow computes them with ``storage_dir=None``: values shell-quoted.

        ``path`` parameters are not resolved on the submitter: the command runs in the pod,
        where the project is the working directory.
        """
        user_parameters = user_parameters or {}
        missing = [name for name, param in self.parameters.items() if name not in user_parameters and param.required]
        if missing:
            raise ProjectError(
                "parameters",
                "no value given for required parameter(s) of entry point {0!r}: {1}".format(
                    self.name, ", ".join(repr(m) for m in missing)
                ),
            )
        params = {}
        for name, param in self.parameters.items():
            value = user_parameters.get(name, param.default)
            param.check(value)
            params[name] = shlex.quote(_text(value))
        extra = {}
        for key, value in user_parameters.items():
            if key not in params:
                if not _EXTRA_NAME.match(str(key)):
                    raise ProjectError(
                        "parameters.{0}".format(key),
                        "the entry point does not declare it, and as an extra --{0} it must be a plain name "
                        "(letters, digits, _ - . / :), as MLflow's parameter names are".format(key),
                    )
                if isinstance(value, (dict, list)):
                    raise ProjectError("parameters.{0}".format(key), "expected a scalar value, got {0!r}".format(value))
                extra[shlex.quote(str(key))] = shlex.quote(_text(value))
        return params, extra

    def compute_command(self, user_parameters):
        """The command string exactly as MLflow renders it."""
        params, extra = self.compute_parameters(user_parameters)
        try:
            command = self.command.format(**params)
        except KeyError as exc:
            raise ProjectError(
                "project_uri",
                "the command of entry point {0!r} uses {{{1}}}, which is not one of its parameters".format(
                    self.name, exc.args[0]
                ),
            ) from None
        except (IndexError, ValueError) as exc:
            raise ProjectError(
                "project_uri", "the command of entry point {0!r} cannot be formatted: {1}".format(self.name, exc)
            ) from None
        parts = [command]
        parts.extend("--{0} {1}".format(k, v) for k, v in extra.items())
        return " ".join(parts)

    def argv(self, user_parameters):
        """The command as the argument list the container receives (no shell, no stray quotes)."""
        command = self.compute_command(user_parameters)
        try:
            return shlex.split(command)
        except ValueError as exc:
            raise ProjectError(
                "project_uri", "the command of entry point {0!r} cannot be split: {1}".format(self.name, exc)
            ) from None

    def logged_parameters(self, user_parameters):
        """The parameters MLflow logs for the run (defaults filled in, extras after)."""
        params, extra = self.compute_parameters(user_parameters)
        result = list(params.items())
        result.extend(extra.items())
        return result


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


class Project(object):
    def __init__(self, directory, name, entry_points, docker_env, env_type):
        self.directory = directory
        self.name = name
        self.entry_points = entry_points
        self.docker_env = docker_env
        self.env_type = env_type

    def get_entry_point(self, entry_point):
        """An entry point by name, or a ``.py``/``.sh``/``.R`` file run as MLflow runs it."""
        if entry_point in self.entry_points:
            return self.entry_points[entry_point]
        extension = os.path.splitext(entry_point)[1]
        if extension == ".py":
            return EntryPoint(entry_point, {}, "python {0}".format(shlex.quote(entry_point)))
        if extension == ".sh":
            # MLflow takes $SHELL of the submitter; the command runs in the image, where bash is the safe bet.
            return EntryPoint(entry_point, {}, "bash {0}".format(shlex.quote(entry_point)))
        if extension == ".R":
            return EntryPoint(
                entry_point, {}, "Rscript -e \"mlflow::mlflow_source('{0}')\" --args".format(shlex.quote(entry_point))
            )
        raise ProjectError(
            "entry_point",
            "{0!r} is not an entry point of the project (known: {1}) nor a .py, .sh or .R script".format(
                entry_point, ", ".join(sorted(self.entry_points)) or "none"
            ),
        )


def find_mlproject(directory):
    for filename in sorted(os.listdir(directory)):
        if filename.lower() == MLPROJECT_FILE_NAME:
            return os.path.join(directory, filename)
    return None


def load_project(directory, require_mlproject=True):
    """Load ``directory``/MLproject as MLflow does; errors name ``project_uri``."""
    if not directory or not os.path.isdir(directory):
        raise ProjectError("project_uri", "{0!r} is not a directory".format(directory))
    path = find_mlproject(directory)
    if path is None:
        if require_mlproject:
            raise ProjectError("project_uri", "no MLproject file in {0}".format(directory))
        data = {}
    else:
        try:
            with open(path) as handle:
                data = yaml.safe_load(handle) or {}
        except (OSError, IOError, yaml.YAMLError) as exc:
            raise ProjectError("project_uri", "cannot read {0}: {1}".format(path, exc)) from None
    if not isinstance(data, dict):
        raise ProjectError("project_uri", "{0} must hold a YAML mapping".format(path))
    env_fields = sorted(set(data).intersection(ENV_FIELDS))
    if len(env_fields) > 1:
        raise ProjectError("project_uri", "the MLproject has more than one environment field: {0}".format(env_fields))
    entry_points = {}
    raw_entry_points = data.get("entry_points") or {}
    if not isinstance(raw_entry_points, dict):
        raise ProjectError("project_uri", "entry_points in the MLproject must be a mapping")
    for name, spec in raw_entry_points.items():
        if not isinstance(spec, dict):
            raise ProjectError("project_uri", "entry point {0!r} must be a mapping".format(name))
        command = spec.get("command")
        if not isinstance(command, str):
            raise ProjectError("project_uri", "entry point {0!r} has no command".format(name))
        entry_points[str(name)] = EntryPoint(str(name), spec.get("parameters") or {}, command)
    docker_env = data.get("docker_env")
    env_type = env_fields[0] if env_fields else None
    if docker_env is not None and (not isinstance(docker_env, dict) or not docker_env.get("image")):
        raise ProjectError("project_uri", "docker_env in the MLproject has no image")
    name = data.get("name")
    return Project(directory, None if name is None else str(name), entry_points, docker_env, env_type)


_GIT_URI = re.compile(r"^(https?|ssh|git|file)://|^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:")
# What of git's stderr goes into an error: one line, this long at most, printable characters only.
_GIT_LINE_MAX = 200
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def is_git_uri(uri):
    """``https://``, ``ssh://``, ``git://``, ``file://`` or ``user@host:path`` (MLflow's ``uri#subdir`` form too)."""
    return bool(uri) and bool(_GIT_URI.match(str(uri)))


def check_not_an_option(option, value):
    """Refuse a value that a command would take for one of its options (issue #27).

    ``version`` and ``project_uri`` often come from whoever asked for the run: as arguments of
    git, ``--pathspec-from-file=/etc/passwd`` or ``--upload-pack=...`` would be options.
    """
    if str(value).startswith("-"):
        raise ProjectError(
            option, "{0!r} starts with '-', which git would take for an option; it is refused".format(value)
        )


def _check_git_uri(repo_uri):
    """The parts of ``repo_uri`` that git or ssh would read as options: the URI, its user, its host."""
    check_not_an_option("project_uri", repo_uri)
    parsed = urlparse(repo_uri)
    if parsed.scheme and parsed.netloc:
        user, _at, host = parsed.netloc.rpartition("@")
    else:  # user@host:path, git's scp-like form
        user, _at, rest = repo_uri.partition("@")
        host = rest.split(":", 1)[0]
    if user.startswith("-") or host.startswith("-"):
        raise ProjectError(
            "project_uri",
            "the user or host of {0!r} starts with '-', which ssh would take for an option".format(
                redact_uri(repo_uri)
            ),
        )


def redact_uri(uri):
    """``uri`` as errors show it: no password (``ssh://git:***@host``), no user part of an http(s) URL
    (``https://***@host/...``: a token often stands there as the user name)."""
    parsed = urlparse(str(uri))
    userinfo, at, hostport = parsed.netloc.rpartition("@")
    if not at:
        return str(uri)
    if parsed.scheme in ("http", "https"):
        return parsed._replace(netloc="***@" + hostport).geturl()
    if parsed.password:
        return parsed._replace(netloc="{0}:***@{1}".format(userinfo.split(":", 1)[0], hostport)).geturl()
    return str(uri)


def _uri_secrets(uri):
    """What of ``uri`` must not appear in an error: its password, and the user part of an http(s) URL."""
    parsed = urlparse(str(uri))
    secrets = [parsed.password]
    if parsed.scheme in ("http", "https"):
        secrets.append(parsed.username)
    return [s for s in secrets if s]


def _git_reason(stderr, secrets=()):
    """git's own reason, in one line: its first ``fatal:``/``error:`` line, cut short, nothing else.

    Never the command line and never more than one line: what git quotes (a path, a ref) is then
    at most what we gave it, and nothing of a file it was led to read can follow.
    """
    lines = [line.strip() for line in str(stderr or "").splitlines() if line.strip()]
    chosen = next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[0] if lines else "")
    for secret in secrets:
        if secret:
            chosen = chosen.replace(secret, "***")
    chosen = _UNPRINTABLE.sub(" ", chosen)
    if len(chosen) > _GIT_LINE_MAX:
        chosen = chosen[: _GIT_LINE_MAX - 3] + "..."
    return chosen or "git gave no reason"


def _git(args, cwd=None):
    """Run git with ``args`` (a list: no shell, nothing expanded), never waiting for a prompt."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    try:
        # Not AnsibleModule.run_command: this runs from module_utils with no module at hand (plan time).
        # pylint: disable-next=ansible-bad-function
        return subprocess.run(  # noqa: S603 - an argument list, no shell; untrusted values follow checks and --
            ["git"] + list(args),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            check=False,
        )
    except OSError as exc:
        raise ProjectError("project_uri", "a git project_uri needs the git executable: {0}".format(exc)) from None


def fetch_git_project(uri, version, dest):
    """Clone ``uri`` (``repo#subdir`` as MLflow) into ``dest``, check out ``version``; returns the project dir.

    Both are untrusted strings (issue #27): a leading ``-`` is refused, the URI reaches ``git
    clone`` after ``--`` as one argument (no expansion of ``$VARIABLES`` or ``~``, which
    GitPython's clone_from did before 3.1.30), the version ``git checkout`` before ``--`` (so it
    can only be a revision). Errors carry one line of git's reason, never its command line.
    A symbolic link of the repository that points outside the clone is refused: the snapshot and
    the image would pack the controller's file it points to.
    """
    repo_uri, _sep, subdir = str(uri).partition("#")
    _check_git_uri(repo_uri)
    if version:
        check_not_an_option("version", version)
    shown = redact_uri(repo_uri)
    cloned = _git(["clone", "--quiet", "--", repo_uri, dest])
    if cloned.returncode != 0:
        reason = _git_reason(cloned.stderr, _uri_secrets(repo_uri))
        raise ProjectError("project_uri", "cannot clone {0}: {1}".format(shown, reason))
    if version:
        checked = _git(["checkout", "--quiet", version, "--"], cwd=dest)
        if checked.returncode != 0:
            raise ProjectError("version", "{0!r} is not a branch, tag or commit of {1}".format(version, shown))
    root = os.path.realpath(dest)
    _check_links(root, shown)
    directory = os.path.realpath(os.path.join(root, subdir)) if subdir else root
    if not _below(directory, root) or not os.path.isdir(directory):
        raise ProjectError("project_uri", "{0!r} is not a directory of {1}".format(subdir, shown))
    return directory


def _below(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _check_links(root, shown):
    """Refuse symbolic links of the clone whose target (resolved) is outside it."""
    for current, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (current == root and d == ".git")]
        for name in dirs + files:
            path = os.path.join(current, name)
            if os.path.islink(path) and not _below(os.path.realpath(path), root):
                raise ProjectError(
                    "project_uri",
                    "{0} has a symbolic link {1} that points outside the repository; it is refused, since the "
                    "snapshot or image would carry the file it points to on the controller".format(
                        shown, os.path.relpath(path, root)
                    ),
                )
