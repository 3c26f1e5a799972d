"""A real os.fork(): the child gets its own root descriptor, none of the parent's open objects."""

from __future__ import annotations

import os
import threading

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from tests.forking import run_in_child

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]


def test_child_uses_its_own_root_descriptor(files, root):
    files.write_text("a", "from the parent")
    parent_fd = files._handle.fd

    def child():
        assert files._handle is None  # dropped at fork, reopened on first use
        assert files.read_text("a") == "from the parent"
        assert files._handle.fd is not None
        files.write_text("b", "from the child")
        files.disconnect()
        return True

    assert run_in_child(child) == 0
    assert files._handle.fd == parent_fd
    assert files.read_text("b") == "from the child"  # the parent's descriptor still works


def test_a_lock_held_by_the_parent_is_not_released_by_the_child(files):
    held = files.lock("job")

    def child():
        assert not held.held  # not inherited
        held.release()  # does nothing to the parent's lock
        try:
            files.lock("job", timeout=0)
        except ConnectorError as err:
            return err.code is ErrorCode.LOCK_TIMEOUT
        return False

    assert run_in_child(child) == 0
    assert held.held
    with pytest.raises(ConnectorError):
        files.lock("job", timeout=0)  # a child exiting did not release it either
    held.release()
    files.lock("job", timeout=0).release()


def test_a_writer_open_in_the_parent_is_committed_only_by_the_parent(files, root):
    writer = files.open("report", "wb")
    writer.write(b"parent data")

    def child():
        try:
            writer.write(b"child data")
        except ConnectorError as err:
            assert err.code is ErrorCode.INVALID_REQUEST
        else:
            return False
        writer.close()  # closes the child's copies only
        tx_ok = not files.exists("report")
        return tx_ok

    assert run_in_child(child) == 0
    assert not files.exists("report")
    writer.write(b" and more")
    writer.close()
    assert files.read_bytes("report") == b"parent data and more"
    assert [p.name for p in root.iterdir()] == ["report"]


def test_a_transaction_open_in_the_parent_is_dead_in_the_child(files):
    tx = files.transaction()
    tx.write_text("t", "parent")

    def child():
        try:
            tx.write_text("u", "child")
        except ConnectorError:
            pass
        else:
            return False
        tx.rollback()  # touches no file of the parent's
        return True

    assert run_in_child(child) == 0
    tx.commit()
    assert files.read_text("t") == "parent"
    assert not files.exists("u")


def test_the_child_does_not_keep_the_parents_descriptors(files):
    files.write_text("r", "x")
    reader = files.open("r")
    writer = files.open("w", "wb")
    held = files.lock("l")
    owned = {reader._fd, writer._fd, writer._dir_fd, held._fd, held._dir_fd, files._handle.fd}

    def child():
        # fstat opens nothing, so no closed number can be reused before the check.
        for fd in owned:
            try:
                os.fstat(fd)
            except OSError:
                continue
            return False
        return True

    assert run_in_child(child) == 0
    reader.close()
    writer.close()
    held.release()


def test_fork_while_other_threads_write(files, root):
    stop = threading.Event()
    errors: list[BaseException] = []

    def busy(n: int) -> None:
        while not stop.is_set():
            try:
                files.write_bytes(f"busy{n}", b"x" * 10_000)
                with files.lock(f"busy{n}", timeout=30):
                    files.append(f"busy{n}.log", b"y")
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=busy, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):

            def child():
                # Whatever the other threads held at fork time, the child works.
                files.write_text("child", "ok")
                with files.lock("busy0", timeout=30):
                    files.append("busy0.log", b"c")
                return files.read_text("child") == "ok"

            assert run_in_child(child) == 0
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    stray = [p.name for p in root.iterdir() if p.name.startswith(".dmtmp")]
    assert stray == [] or all((root / s).stat().st_size <= 10_000 for s in stray)
