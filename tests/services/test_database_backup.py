"""The database role's backups on the real PostgreSQL and MariaDB, with a real MLflow server.

Runs, params, metric histories, tags and artifacts are logged to ``mlflow server``; the role's
rendered backup.sh dumps the database (pg_dump -Fc / mysqldump --single-transaction), the
database is wiped, the rendered restore.sh loads the dump back, and a new server reads
everything back unchanged (a run logged after the backup is gone). The verification step
refuses a truncated or damaged dump, restore.sh refuses the other engine's dump and a missing
file before touching the database, and backup.sh keeps only the newest dumps.

The artifacts copy: the rendered artifacts.sh (the backup pod's ``artifacts`` container, run
with busybox's tools when busybox is installed, as in its image) archives the artifacts
directory of that real server beside the dump, with the dump's time in its name; the
directory is wiped, restore brings every file back byte for byte (files not in the archive
stay), and a server reads the artifacts back. A truncated archive is refused, a dump without
its archive is named, and archives are pruned with their dumps.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy
from mlflow.tracking import MlflowClient

from tests.harness import backup_scripts
from tests.harness.mlflow_data import log_sample, run_count, snapshot

pytestmark = pytest.mark.services


@pytest.fixture(scope="module", params=["postgresql", "mysql"])
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def rendered(engine: str) -> backup_scripts.Rendered:
    return backup_scripts.render(engine)


def _credentials(uri: str) -> backup_scripts.Credentials:
    url = sqlalchemy.engine.make_url(uri)
    return backup_scripts.Credentials(url.host, url.port, url.username, url.password, url.database)


def _backend_uri(request: pytest.FixtureRequest, engine: str) -> str:
    return request.getfixturevalue("postgres_backend_uri" if engine == "postgresql" else "mysql_backend_uri")


def _wipe(uri: str) -> None:
    db = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        meta = sqlalchemy.MetaData()
        meta.reflect(db)
        meta.drop_all(db)
        assert sqlalchemy.inspect(db).get_table_names() == []
    finally:
        db.dispose()


def _database_with_runs(request: pytest.FixtureRequest, engine: str, tmp_path: Path, rows: int):
    """A fresh database with a ``runs`` table of ``rows`` rows (what count_runs reads), its
    credentials and an empty backup directory."""
    uri = _backend_uri(request, engine)
    backups = tmp_path / "backups"
    backups.mkdir()
    db = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    with db.begin() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE runs (run_uuid VARCHAR(32) PRIMARY KEY, payload TEXT)"))
        conn.execute(
            sqlalchemy.text("INSERT INTO runs VALUES (:id, :payload)"),
            [{"id": f"{i:032x}", "payload": f"row {i} " * 50} for i in range(rows)],
        )
    db.dispose()
    return uri, _credentials(uri), backups


def _served_sample(request: pytest.FixtureRequest, engine: str, mlflow_server, tmp_path: Path):
    """A real ``mlflow server`` on a fresh database with the sample logged (artifacts in
    ``tmp_path/artifacts``), and an empty backup directory."""
    uri = _backend_uri(request, engine)
    artifacts = tmp_path / "artifacts"
    backups = tmp_path / "backups"
    backups.mkdir()
    server = mlflow_server(uri, artifacts_dir=artifacts)
    client = MlflowClient(server.url)
    log_sample(client, "before")
    return uri, _credentials(uri), artifacts, backups, server, client


def _ok(result, what: str) -> str:
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _field(output: str, name: str) -> str:
    return next(
        word.split("=", 1)[1] for line in output.splitlines() for word in line.split() if word.startswith(name + "=")
    )


def test_scripts_carry_no_credential(rendered: backup_scripts.Rendered) -> None:
    container = rendered.container
    password_env = next(e for e in container["env"] if e["name"] == "DB_PASSWORD")
    assert password_env["valueFrom"]["secretKeyRef"]["key"] == "password"
    assert container["command"][:2] == ["/bin/sh", "/scripts/backup.sh"]
    assert "rendered-without-cluster" not in "".join(rendered.scripts.values())


# PostgreSQL's dump, wipe and restore run on real pods (tests/cluster/test_day_two.py): MariaDB's here.
@pytest.mark.parametrize("engine", ["mysql"], indirect=True)
def test_backup_wipe_restore_keeps_everything(
    request: pytest.FixtureRequest, engine: str, rendered: backup_scripts.Rendered, mlflow_server, tmp_path: Path
) -> None:
    uri, creds, artifacts, backups, server, client = _served_sample(request, engine, mlflow_server, tmp_path)
    before = snapshot(client)
    assert run_count(before) == 6

    result = rendered.run("backup.sh", creds, backups)
    output = _ok(result, "backup.sh")
    dump = _field(output, "backup-file")
    assert dump.startswith(rendered.prefix) and dump.endswith(rendered.suffix)
    assert sorted(p.name for p in backups.iterdir()) == [dump]
    assert creds.password not in result.stdout + result.stderr

    # Logged after the backup: the restore must take it away again.
    late = client.create_run(before["before-experiment-0"]["id"], run_name="after-the-backup").info.run_id
    server.stop()

    _wipe(uri)
    result = rendered.run("restore.sh", creds, backups)  # RESTORE_FILE empty: the newest dump
    output = _ok(result, "restore.sh")
    assert _field(output, "restore-file") == dump
    assert _field(output, "restored-runs") == "6"  # the deleted run too; not the one logged after the backup

    server = mlflow_server(uri, artifacts_dir=artifacts)
    after = snapshot(MlflowClient(server.url))
    assert after == before
    assert late not in str(after)


def test_verification_refuses_damaged_dumps(
    request: pytest.FixtureRequest, engine: str, rendered: backup_scripts.Rendered, tmp_path: Path
) -> None:
    uri, creds, backups = _database_with_runs(request, engine, tmp_path, rows=2000)
    good = _field(_ok(rendered.run("backup.sh", creds, backups), "backup.sh"), "backup-file")
    data = (backups / good).read_bytes()

    damaged = {
        "truncated": data[: len(data) * 2 // 3],
        "flipped": data[: len(data) // 2]
        + bytes(b ^ 0xFF for b in data[len(data) // 2 : len(data) // 2 + 64])
        + data[len(data) // 2 + 64 :],
        "empty": b"",
    }
    for index, (kind, content) in enumerate(damaged.items()):
        name = f"{rendered.prefix}2030010{index}T000000Z{rendered.suffix}"
        (backups / name).write_bytes(content)
        result = rendered.run("restore.sh", creds, backups, args=["--check"], env={"RESTORE_FILE": name})
        assert result.returncode != 0, f"{kind} dump passed verification:\n{result.stdout}"
        assert "does not read back" in result.stderr, result.stderr
        # Without --check too: refused before the database is touched.
        result = rendered.run("restore.sh", creds, backups, env={"RESTORE_FILE": name})
        assert result.returncode != 0 and "nothing was changed" in result.stderr, result.stderr
        (backups / name).unlink()

    db = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    with db.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT count(*) FROM runs")).scalar_one() == 2000
    db.dispose()

    # The other engine's dump and a missing file are refused, naming the reason.
    other = "postgresql" if engine == "mysql" else "mysql"
    foreign = f"mlflow-{other}-20300101T000000Z{'.dump' if other == 'postgresql' else '.sql.gz'}"
    shutil.copy(backups / good, backups / foreign)
    result = rendered.run("restore.sh", creds, backups, env={"RESTORE_FILE": foreign})
    assert result.returncode != 0 and f"not a dump of this {engine} database" in result.stderr, result.stderr
    missing = f"{rendered.prefix}20990101T000000Z{rendered.suffix}"
    result = rendered.run("restore.sh", creds, backups, env={"RESTORE_FILE": missing})
    assert result.returncode != 0 and "does not exist" in result.stderr, result.stderr
    empty_dir = tmp_path / "none"
    empty_dir.mkdir()
    result = rendered.run("restore.sh", creds, empty_dir)
    assert result.returncode != 0 and f"no {engine} dump" in result.stderr, result.stderr


def test_backup_prunes_to_the_retention_count(
    request: pytest.FixtureRequest, engine: str, rendered: backup_scripts.Rendered, tmp_path: Path
) -> None:
    _server, creds, backups = _database_with_runs(request, engine, tmp_path, rows=1)
    older = [f"{rendered.prefix}2020010{i}T000000Z{rendered.suffix}" for i in range(1, 6)]
    for name in older:
        (backups / name).write_bytes(b"old")
    unrelated = backups / "notes.txt"
    unrelated.write_text("not a dump")

    output = _ok(rendered.run("backup.sh", creds, backups, env={"BACKUP_KEEP": "3"}), "backup.sh")
    newest = _field(output, "backup-file")
    assert sorted(p.name for p in backups.iterdir()) == sorted([newest, older[-1], older[-2], "notes.txt"])
    assert _field(output, "kept") == "3"
    assert "pruned " + older[0] in output


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# The archive beside PostgreSQL's dump is restored on real pods (tests/cluster/test_day_two.py).
@pytest.mark.parametrize("engine", ["mysql"], indirect=True)
def test_artifacts_archive_beside_the_dump_restores_byte_for_byte(
    request: pytest.FixtureRequest, engine: str, rendered: backup_scripts.Rendered, mlflow_server, tmp_path: Path
) -> None:
    assert rendered.artifacts is not None, "the backup pod has no artifacts container (database_backup_artifacts)"
    uri, creds, artifacts, backups, server, client = _served_sample(request, engine, mlflow_server, tmp_path)
    run_id = client.search_runs([client.get_experiment_by_name("before-experiment-0").experiment_id])[0].info.run_id
    blob = tmp_path / "model.txt"  # large, and text (the snapshot reads artifacts back as text)
    blob.write_bytes(os.urandom(150_000).hex().encode() + "ünïcode\r\n\x00".encode())
    client.log_artifact(run_id, str(blob), "model")
    before = snapshot(client)
    files = _tree(artifacts)
    assert any(name.endswith("model/model.txt") for name in files), sorted(files)

    dump = _field(_ok(rendered.run("backup.sh", creds, backups), "backup.sh"), "backup-file")
    result = rendered.run_artifacts("backup", backups, artifacts)
    output = _ok(result, "artifacts.sh backup")
    archive = _field(output, "artifacts-file")
    assert archive == dump.removesuffix(rendered.suffix) + ".artifacts.tar.gz"  # the same time in the name
    assert sorted(p.name for p in backups.iterdir()) == sorted([dump, archive])

    # After the backup: a file of a later run, which the restore must leave alone.
    late = artifacts / "late" / "after-the-backup.txt"
    late.parent.mkdir()
    late.write_text("logged after the backup")
    server.stop()

    # Wipe: the database and every file the archive holds (the volume's root stays, as a volume's does).
    _wipe(uri)
    for entry in artifacts.iterdir():
        if entry.name != "late":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    assert not any(name in _tree(artifacts) for name in files)

    # The check a restore runs first: the chosen dump's archive is there and reads back.
    check = rendered.run_artifacts("check", backups, artifacts, env={"RESTORE_FILE": ""})
    assert _field(_ok(check, "artifacts.sh check"), "artifacts-file") == archive
    _ok(rendered.run("restore.sh", creds, backups, env={"RESTORE_FILE": dump}), "restore.sh")
    restored = _ok(rendered.run_artifacts("restore", backups, artifacts, env={"RESTORE_FILE": dump}), "restore")
    assert _field(restored, "restored-artifacts") == str(len(files))
    after_files = _tree(artifacts)
    assert {name: after_files.get(name) for name in files} == files  # byte for byte
    assert late.read_text() == "logged after the backup"  # nothing is deleted

    server = mlflow_server(uri, artifacts_dir=artifacts)
    assert snapshot(MlflowClient(server.url)) == before
    server.stop()

    # Restore replaces data by nature; the same dump and archive again give the same result.
    _ok(rendered.run("restore.sh", creds, backups, env={"RESTORE_FILE": dump}), "restore.sh again")
    _ok(rendered.run_artifacts("restore", backups, artifacts, env={"RESTORE_FILE": dump}), "restore again")
    assert _tree(artifacts) == after_files
    server = mlflow_server(uri, artifacts_dir=artifacts)
    assert snapshot(MlflowClient(server.url)) == before


def test_artifacts_archive_damaged_missing_and_pruned_with_its_dump(
    request: pytest.FixtureRequest, engine: str, rendered: backup_scripts.Rendered, tmp_path: Path
) -> None:
    _uri, creds, backups = _database_with_runs(request, engine, tmp_path, rows=1)
    artifacts = tmp_path / "artifacts"
    (artifacts / "1" / "run" / "artifacts").mkdir(parents=True)
    (artifacts / "1" / "run" / "artifacts" / "data.bin").write_bytes(os.urandom(200_000))
    older = [f"{rendered.prefix}2020010{i}T000000Z" for i in range(1, 4)]
    for stamp in older:
        (backups / (stamp + rendered.suffix)).write_bytes(b"old")
        (backups / (stamp + ".artifacts.tar.gz")).write_bytes(b"old")
    orphan = backups / f"{rendered.prefix}20190101T000000Z.artifacts.tar.gz"  # its dump is gone
    orphan.write_bytes(b"old")

    dump = _field(_ok(rendered.run("backup.sh", creds, backups, env={"BACKUP_KEEP": "2"}), "backup.sh"), "backup-file")
    output = _ok(rendered.run_artifacts("backup", backups, artifacts, env={"BACKUP_KEEP": "2"}), "artifacts backup")
    archive = _field(output, "artifacts-file")
    # Pruned together: the two newest dumps and exactly their archives.
    kept = [older[-1] + rendered.suffix, older[-1] + ".artifacts.tar.gz", dump, archive]
    assert sorted(p.name for p in backups.iterdir()) == sorted(kept)
    assert _field(output, "kept") == "2"

    # A truncated archive is refused by the check and by the restore, before anything is touched.
    data = (backups / archive).read_bytes()
    stamp = f"{rendered.prefix}20300101T000000Z"
    shutil.copy(backups / dump, backups / (stamp + rendered.suffix))
    (backups / (stamp + ".artifacts.tar.gz")).write_bytes(data[: len(data) // 2])
    before = _tree(artifacts)
    for mode in ("check", "restore"):
        result = rendered.run_artifacts(mode, backups, artifacts, env={"RESTORE_FILE": stamp + rendered.suffix})
        assert result.returncode != 0, f"a truncated archive passed ({mode}):\n{result.stdout}"
        assert "does not read back; nothing was changed" in result.stderr, result.stderr
    assert _tree(artifacts) == before

    # A dump without its archive is named, with the way to restore the database alone.
    (backups / (stamp + ".artifacts.tar.gz")).unlink()
    result = rendered.run_artifacts("check", backups, artifacts, env={"RESTORE_FILE": stamp + rendered.suffix})
    assert result.returncode != 0 and "has no artifacts archive" in result.stderr, result.stderr
    assert "database_restore_artifacts=false" in result.stderr
