"""MLproject loading and command rendering, with MLflow itself as the oracle."""

import os
import shlex
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.exceptions import ExecutionException
from mlflow.projects import _project_spec as mlflow_spec

from ansible_collections.mlops.mlflow_k8s.plugins.module_utils import project as ours
from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.errors import ProjectError

PROJECTS = Path(__file__).parent / "fixtures" / "projects"

# (project, entry point, parameters): every case is rendered by MLflow and by us.
CASES = [
    ("wine", "main", {"alpha": 0.5}),
    ("wine", "main", {"alpha": "0.5", "l1_ratio": 0.2}),
    ("wine", "main", {"alpha": 1, "extra": "x y", "path/like:key.v-2": "v"}),
    ("awkward", "main", {}),
    ("awkward", "main", {"Data_File": "it's here; rm -rf /"}),
    ("awkward", "Other_Entry", {"flag": "$HOME"}),
    ("all_types", "main", {"f": 1.5}),
    ("all_types", "main", {"f": "2", "i": 7, "s": "", "p": "data/x.csv", "u": "file:///tmp/x", "plain": 'a"b'}),
    ("all_types", "second", {"n": 4}),
    ("all_types", "run.py", {}),
    ("all_types", "steps.sh", {"n": 1}),
    ("template_extra", "main", {"epochs": 10}),
]


def mlflow_command(project, entry_point, parameters):
    loaded = mlflow_spec.load_project(str(PROJECTS / project))
    return loaded.get_entry_point(entry_point).compute_command(parameters, None)


@pytest.fixture(autouse=True)
def _bash_shell(monkeypatch):
    # MLflow runs .sh entry points with the submitter's $SHELL; we always say bash (the image's shell).
    monkeypatch.setenv("SHELL", "bash")


@pytest.mark.parametrize(("project", "entry_point", "parameters"), CASES)
def test_command_is_mlflows(project, entry_point, parameters):
    mine = ours.load_project(str(PROJECTS / project)).get_entry_point(entry_point)
    expected = mlflow_command(project, entry_point, parameters)
    assert mine.compute_command(parameters) == expected
    # The container gets the argument list a shell would have made of MLflow's string.
    assert mine.argv(parameters) == shlex.split(expected)


@pytest.mark.parametrize(("project", "entry_point", "parameters"), CASES)
def test_logged_parameters_are_mlflows(project, entry_point, parameters):
    theirs = mlflow_spec.load_project(str(PROJECTS / project)).get_entry_point(entry_point)
    params, extra = theirs.compute_parameters(parameters, None)
    mine = ours.load_project(str(PROJECTS / project)).get_entry_point(entry_point)
    assert mine.logged_parameters(parameters) == list(params.items()) + list(extra.items())


@pytest.mark.parametrize("project", ["wine", "awkward", "all_types", "template_extra", "no_docker"])
def test_project_spec_is_mlflows(project):
    theirs = mlflow_spec.load_project(str(PROJECTS / project))
    mine = ours.load_project(str(PROJECTS / project))
    assert mine.name == theirs.name
    assert mine.docker_env == theirs.docker_env
    assert sorted(mine.entry_points) == sorted(theirs._entry_points)
    for name, entry in mine.entry_points.items():
        other = theirs._entry_points[name]
        assert entry.command == other.command
        assert {k: (p.type, p.default) for k, p in entry.parameters.items()} == {
            k: (p.type, p.default) for k, p in other.parameters.items()
        }


@settings(max_examples=150, deadline=None)
@given(
    data_file=st.text(min_size=0, max_size=40),
    extra_key=st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-/:]{0,11}", fullmatch=True),
    extra_value=st.text(max_size=30),
)
def test_any_string_renders_as_mlflow_does(data_file, extra_key, extra_value):
    if extra_key == "Data_File":
        return
    parameters = {"Data_File": data_file, extra_key: extra_value}
    mine = ours.load_project(str(PROJECTS / "awkward")).get_entry_point("main")
    expected = mlflow_command("awkward", "main", parameters)
    assert mine.compute_command(parameters) == expected
    argv = mine.argv(parameters)
    assert argv == shlex.split(expected)
    # The value arrives in the container as one argument, byte for byte.
    assert argv[3] == data_file


@pytest.mark.parametrize(
    ("project", "entry_point", "parameters"),
    [
        ("wine", "main", {}),  # alpha is required
        ("all_types", "main", {"f": 1, "u": "not a uri"}),
        ("all_types", "nope", {}),
    ],
)
def test_mlflow_and_we_both_refuse(project, entry_point, parameters):
    with pytest.raises(ExecutionException):
        mlflow_command(project, entry_point, parameters)
    with pytest.raises(ProjectError) as caught:
        ours.load_project(str(PROJECTS / project)).get_entry_point(entry_point).compute_command(parameters)
    assert caught.value.option in ("parameters", "parameters.u", "entry_point")


@pytest.mark.parametrize(
    ("parameters", "option"),
    [
        ({}, "parameters"),
        ({"f": "abc"}, "parameters.f"),
        ({"f": True}, "parameters.f"),
        ({"f": 1, "i": "1.5"}, "parameters.i"),
        ({"f": 1, "i": 2.5}, "parameters.i"),
        ({"f": 1, "i": False}, "parameters.i"),
        ({"f": 1, "u": "relative/path"}, "parameters.u"),
        ({"f": 1, "s": {"a": 1}}, "parameters.s"),
        ({"f": 1, "unknown": [1, 2]}, "parameters.unknown"),
    ],
)
def test_mistyped_parameters_name_the_option(parameters, option):
    entry = ours.load_project(str(PROJECTS / "all_types")).get_entry_point("main")
    with pytest.raises(ProjectError) as caught:
        entry.argv(parameters)
    assert caught.value.option == option
    assert caught.value.text().startswith(option + ": ")


def test_well_typed_numbers_pass():
    entry = ours.load_project(str(PROJECTS / "all_types")).get_entry_point("main")
    argv = entry.argv({"f": "1e-3", "i": "42"})
    assert argv[argv.index("-f") + 1] == "1e-3"
    assert argv[argv.index("-i") + 1] == "42"
    assert argv[argv.index("-s") + 1] == "two words"
    assert argv[argv.index("--plain") + 1] == "quote'me"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no MLproject"),
        ("- a list\n", "YAML mapping"),
        ("name: x\ndocker_env: {}\n", "no image"),
        ("name: x\ndocker_env: {image: a}\nconda_env: c.yaml\n", "more than one environment"),
        ("name: x\nentry_points: {main: {parameters: {}}}\n", "no command"),
        ("name: x\nentry_points: [main]\n", "must be a mapping"),
        ("name: [unclosed\n", "cannot read"),
        ("name: x\nentry_points: {main: {parameters: {a: 3}, command: 'x {a}'}}\n", "type name or a mapping"),
    ],
)
def test_broken_projects_name_project_uri(tmp_path, content, message):
    if content is not None:
        (tmp_path / "MLproject").write_text(content)
    with pytest.raises(ProjectError) as caught:
        ours.load_project(str(tmp_path))
    assert caught.value.option == "project_uri"
    assert message in caught.value.message


def test_missing_directory_names_project_uri(tmp_path):
    with pytest.raises(ProjectError) as caught:
        ours.load_project(str(tmp_path / "absent"))
    assert caught.value.option == "project_uri"


def test_command_with_unknown_placeholder(tmp_path):
    (tmp_path / "MLproject").write_text("name: x\nentry_points: {main: {command: 'run {nope}'}}\n")
    entry = ours.load_project(str(tmp_path)).get_entry_point("main")
    with pytest.raises(ProjectError, match="nope"):
        entry.argv({})


@settings(max_examples=150, deadline=None)
@given(key=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12))
def test_any_extra_key_is_mlflows_or_refused_by_name(key):
    """Extra keys MLflow would shell-quote (and its tracking server then refuses) we refuse up front."""
    if key in ("alpha", "l1_ratio"):
        return
    parameters = {"alpha": 1, key: "v"}
    mine = ours.load_project(str(PROJECTS / "wine")).get_entry_point("main")
    try:
        command = mine.compute_command(parameters)
    except ProjectError as error:
        assert error.option == "parameters." + key
        assert error.text().startswith(f"parameters.{key}: ")
    else:
        assert command == mlflow_command("wine", "main", parameters)


def test_example_project_renders_as_mlflow_does():
    example = Path(__file__).resolve().parents[2] / "examples" / "wine-quality"
    parameters = {"alpha": 0.3, "epochs": 5, "tag": "first try"}
    expected = mlflow_spec.load_project(str(example)).get_entry_point("main").compute_command(parameters, None)
    mine = ours.load_project(str(example))
    assert mine.name == "wine-quality" and mine.docker_env["image"]
    assert mine.get_entry_point("main").compute_command(parameters) == expected
    assert mine.get_entry_point("main").argv(parameters)[-2:] == ["--tag", "first try"]


@pytest.fixture
def git_repo(tmp_path):
    """A real git repository holding the wine fixture under projects/wine, tagged v1, then changed."""
    import shutil
    import subprocess

    repo = tmp_path / "repo"
    shutil.copytree(PROJECTS / "wine", repo / "projects" / "wine")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**os.environ, **env})

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-q", "-m", "v1")
    git("tag", "v1")
    (repo / "projects" / "wine" / "train.py").write_text("print('v2')\n")
    git("commit", "-q", "-am", "v2")
    return repo


def test_git_project_uri_is_cloned_like_mlflow_takes_it(git_repo, tmp_path):
    from ansible_collections.mlops.mlflow_k8s.plugins.module_utils.image import content_hash

    uri = f"file://{git_repo}#projects/wine"
    assert ours.is_git_uri(uri) and not ours.is_git_uri(str(git_repo))
    v1 = ours.fetch_git_project(uri, "v1", str(tmp_path / "v1"))
    head = ours.fetch_git_project(uri, None, str(tmp_path / "head"))
    assert ours.load_project(v1).name == "LogisticRegression"
    assert content_hash(v1) == content_hash(str(PROJECTS / "wine"))  # .git is not content
    assert content_hash(head) != content_hash(v1)


@pytest.mark.parametrize(
    ("suffix", "version", "option"),
    [
        ("#projects/wine", "no-such-tag", "version"),
        ("#projects/none", None, "project_uri"),
        ("-missing", None, "project_uri"),
    ],
)
def test_git_errors_name_the_option(git_repo, tmp_path, suffix, version, option):
    with pytest.raises(ProjectError) as caught:
        ours.fetch_git_project(f"file://{git_repo}{suffix}", version, str(tmp_path / "clone"))
    assert caught.value.option == option


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        (
            "Cloning into 'x'...\nfatal: repository 'https://h/r/' not found\n",
            "fatal: repository 'https://h/r/' not found",
        ),
        ("error: pathspec 'a' did not match\nerror: pathspec 'b' did not match\n", "error: pathspec 'a' did not match"),
        ("fatal: " + "x" * 500, "fatal: " + "x" * 190 + "..."),
        ("fatal: bad\x1b[31m colour\x00", "fatal: bad [31m colour "),
        ("", "git gave no reason"),
    ],
)
def test_git_reason_is_one_short_printable_line(stderr, reason):
    assert ours._git_reason(stderr) == reason


def test_git_reason_hides_a_password_git_repeats():
    stderr = "fatal: unable to access 'https://u:hunter2@h/r.git/': Could not resolve host: h\n"
    assert "hunter2" not in ours._git_reason(stderr, ["hunter2"])


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://user:tok@host/r.git", "https://***@host/r.git"),
        ("https://ghp_tokenAsUser@host/r.git", "https://***@host/r.git"),
        ("ssh://git:pw@host:2222/r.git", "ssh://git:***@host:2222/r.git"),
        ("ssh://git@host/r.git", "ssh://git@host/r.git"),
        ("git@host:r.git", "git@host:r.git"),
        ("file:///srv/r", "file:///srv/r"),
    ],
)
def test_redact_uri(uri, shown):
    assert ours.redact_uri(uri) == shown
