"""EIO, ENOSPC and EDQUOT from the C library, in a real process running the real connector.

A disk that dies or a network file system that loses its server answers
``write``/``fsync``/``read`` with EIO; thin provisioning and NFS report a
full disk or quota only at ``fsync``. Neither can be had from a healthy
local disk (no device-mapper "error" target in this container), so an
LD_PRELOAD shim (``faultshim.c``, compiled here into a temporary directory)
makes those calls fail for descriptors whose path matches a pattern, in a
subprocess. Each case checks the classification (code, transient,
maybe_applied, errno), that the shim really fired (its log), that an atomic
write that failed left the old file whole and no temporary file behind, and
that no absolute path of the machine leaks into the message.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD and /proc: Linux"),
]

REPO = Path(__file__).resolve().parents[3]
SHIM_SOURCE = Path(__file__).with_name("faultshim.c")
OLD = b"the old content, whole\n" * 500
NEW = b"the new content\n" * 2000

CHILD = textwrap.dedent(
    """
    import json, sys
    from dictamesh_connectors.errors import ConnectorError
    from dictamesh_connectors.file import FileConfig, FileConnector

    root, action, attempts = sys.argv[1], sys.argv[2], int(sys.argv[3])
    files = FileConnector(FileConfig(root=root, retry={"max_attempts": attempts}))
    files._sleep = lambda seconds: None  # retries without waiting
    new = b"the new content\\n" * 2000
    files.connect()
    try:
        if action == "write":
            files.write_bytes("data.bin", new)
        elif action == "stream":
            with files.open("data.bin", "wb") as out:
                for start in range(0, len(new), 4096):
                    out.write(new[start : start + 4096])
        elif action == "read":
            files.read_bytes("data.bin")
        elif action == "append":
            files.append("log", b"one more record\\n")
        elif action == "commit":
            with files.transaction() as tx:
                tx.write_bytes("data.bin", new)
                tx.write_bytes("other.bin", new)
        elif action == "threads":  # 8 writers in one directory, together
            import threading
            outcomes, barrier = [], threading.Barrier(8)
            def writer(n):
                barrier.wait()
                try:
                    files.write_bytes(f"t{n}.bin", new)
                    outcomes.append("ok")
                except ConnectorError as err:
                    outcomes.append([err.code.value, err.maybe_applied, err.details.get("errno")])
            threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            print(json.dumps({"outcomes": outcomes}))
            sys.exit(0)
        result = {"ok": True}
    except ConnectorError as err:
        result = {
            "code": err.code.value,
            "transient": err.transient,
            "maybe_applied": err.maybe_applied,
            "errno": err.details.get("errno"),
            "message": str(err),
        }
    print(json.dumps(result))
    """
)


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler to build the LD_PRELOAD shim")
    out = tmp_path_factory.mktemp("shim") / "faultshim.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM_SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    return out


def run(
    shim: Path,
    root: Path,
    action: str,
    *,
    ops: str,
    path: str,
    code: int,
    times: int | None = None,
    skip: int = 0,
    attempts: int = 1,
) -> tuple[dict[str, object], list[str]]:
    """Run ``action`` in a child with the shim armed; return its outcome and the shim's log."""
    log = root.parent / "faults.log"
    log.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LD_PRELOAD": str(shim),
        "DM_FAULT_OPS": ops,
        "DM_FAULT_PATH": f"{root}/{path}" if path else str(root),
        "DM_FAULT_ERRNO": str(code),
        "DM_FAULT_LOG": str(log),
    }
    if times is not None:
        env["DM_FAULT_TIMES"] = str(times)
    if skip:
        env["DM_FAULT_SKIP"] = str(skip)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), action, str(attempts)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = log.read_text().splitlines() if log.exists() else []
    return json.loads(done.stdout.splitlines()[-1]), lines


def stray(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".dm"))


@pytest.fixture
def old_file(root: Path) -> Path:
    (root / "data.bin").write_bytes(OLD)
    return root / "data.bin"


def assert_error(outcome, code, errno_name, *, transient, maybe_applied, root):
    assert outcome.get("code") == code, outcome
    assert outcome["errno"] == errno_name, outcome
    assert outcome["transient"] is transient, outcome
    assert outcome["maybe_applied"] is maybe_applied, outcome
    assert str(root) not in outcome["message"], outcome  # paths relative to the root only


@pytest.mark.parametrize("action", ["write", "stream"])
@pytest.mark.parametrize("ops", ["write", "fdatasync,fsync"])
def test_eio_before_the_rename_leaves_the_old_file_and_no_temp(shim, root, old_file, action, ops):
    outcome, log = run(shim, root, action, ops=ops, path=".dmtmp-*", code=errno.EIO)
    assert log and all(".dmtmp-" in line for line in log), log  # the fault really fired
    assert_error(outcome, "CONNECTION_LOST", "EIO", transient=True, maybe_applied=False, root=root)
    assert old_file.read_bytes() == OLD
    assert stray(root) == []


def test_eio_on_the_directory_fsync_is_maybe_applied(shim, root, old_file):
    # The rename happened; only its durability is in doubt.
    outcome, log = run(shim, root, "write", ops="fsync", path="", code=errno.EIO)
    assert log and log[0].startswith(f"fsync {errno.EIO} {root}"), log
    assert_error(outcome, "CONNECTION_LOST", "EIO", transient=True, maybe_applied=True, root=root)
    assert old_file.read_bytes() == NEW
    assert stray(root) == []


def test_a_failed_shared_directory_fsync_fails_every_writer_that_relied_on_it(shim, root):
    # Concurrent writers share directory fsyncs (dirsync.py). One real EIO on
    # the root's fsync: each writer either saw a later fsync succeed, or is
    # told its rename may not be durable (maybe_applied); none returns "ok"
    # on the strength of the failed one. Every rename was made.
    outcome, log = run(shim, root, "threads", ops="fsync", path="", code=errno.EIO, times=1)
    assert len(log) == 1 and log[0].startswith(f"fsync {errno.EIO} {root}"), log
    failed = [o for o in outcome["outcomes"] if o != "ok"]
    assert len(outcome["outcomes"]) == 8
    assert failed, outcome  # the failure reached the writers that relied on it
    assert all(o == ["CONNECTION_LOST", True, "EIO"] for o in failed), outcome
    assert all((root / f"t{n}.bin").read_bytes() == NEW for n in range(8))
    assert stray(root) == []


def test_eio_on_read(shim, root, old_file):
    outcome, log = run(shim, root, "read", ops="read", path="data.bin", code=errno.EIO)
    assert len(log) == 1
    assert_error(outcome, "CONNECTION_LOST", "EIO", transient=True, maybe_applied=False, root=root)


def test_eio_on_append_may_have_written(shim, root):
    (root / "log").write_bytes(b"first record\n")
    outcome, log = run(shim, root, "append", ops="write", path="log", code=errno.EIO)
    assert len(log) == 1  # not retried: an append is not idempotent
    assert_error(outcome, "CONNECTION_LOST", "EIO", transient=True, maybe_applied=True, root=root)
    assert (root / "log").read_bytes() == b"first record\n"


def test_eio_is_retried_on_a_fresh_root_and_then_succeeds(shim, root, old_file):
    outcome, log = run(
        shim, root, "write", ops="write", path=".dmtmp-*", code=errno.EIO, times=2, attempts=3
    )
    assert outcome == {"ok": True}
    assert len(log) == 2  # two attempts failed for real, the third went through
    assert old_file.read_bytes() == NEW
    assert stray(root) == []


@pytest.mark.parametrize(("code", "name"), [(errno.ENOSPC, "ENOSPC"), (errno.EDQUOT, "EDQUOT")])
def test_a_full_disk_reported_by_fsync(shim, root, old_file, code, name):
    outcome, log = run(shim, root, "write", ops="fdatasync,fsync", path=".dmtmp-*", code=code)
    assert len(log) == 1
    assert_error(
        outcome, "RESOURCE_EXHAUSTED", name, transient=True, maybe_applied=False, root=root
    )
    assert old_file.read_bytes() == OLD
    assert stray(root) == []


def test_eio_while_a_transaction_stages_changes_nothing(shim, root, old_file):
    outcome, log = run(shim, root, "commit", ops="fdatasync,fsync", path=".dmtmp-*", code=errno.EIO)
    assert log
    assert_error(outcome, "CONNECTION_LOST", "EIO", transient=True, maybe_applied=False, root=root)
    assert old_file.read_bytes() == OLD
    assert not (root / "other.bin").exists()
    assert stray(root) == []


def test_eio_before_a_commits_journal_is_durable_changes_nothing(shim, root, old_file):
    # Root fsyncs of a commit: 1 staged names, 2 the journal's rename, 3 the renames.
    for skip in (0, 1):
        outcome, log = run(shim, root, "commit", ops="fsync", path="", code=errno.EIO, skip=skip)
        assert len(log) == 1, (skip, log)
        assert_error(
            outcome, "CONNECTION_LOST", "EIO", transient=True, maybe_applied=False, root=root
        )
        assert old_file.read_bytes() == OLD
        assert not (root / "other.bin").exists()
        assert stray(root) == [], skip


def test_eio_after_the_commit_point_is_finished_by_the_next_connect(shim, root, old_file):
    from dictamesh_connectors.file import FileConfig, FileConnector

    outcome, log = run(shim, root, "commit", ops="fsync", path="", code=errno.EIO, skip=2)
    assert len(log) == 1
    assert_error(outcome, "CONNECTION_LOST", "EIO", transient=True, maybe_applied=True, root=root)
    assert old_file.read_bytes() == NEW  # every rename was made; durability is in doubt
    assert (root / "other.bin").read_bytes() == NEW
    assert [name[:7] for name in stray(root)] == [".dmtxn-"]  # the journal stays...
    with FileConnector(FileConfig(root=str(root))):
        assert stray(root) == []  # ...until the next connect finishes the commit
    assert old_file.read_bytes() == NEW
