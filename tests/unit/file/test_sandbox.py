"""The sandbox: nothing outside the root is ever read or written, whatever the path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.file import FileConfig, FileConnector
from dictamesh_connectors.file.paths import split


def test_split_rules():
    assert split("a//./b/", "read") == ("a", "b")
    assert split(".", "read") == ()
    assert split("", "read") == ()
    assert split(PurePosixPath("x/y"), "read") == ("x", "y")
    for bad in ("..", "a/..", "../a", "a/../b", "/etc/passwd", "a\x00b", "//x"):
        with pytest.raises(ConnectorError) as info:
            split(bad, "read")
        assert info.value.code is ErrorCode.PERMISSION_DENIED, bad
    for bad in ("\ud800", "x" * 256, "a/" * 2100):
        with pytest.raises(ConnectorError) as info:
            split(bad, "read")
        assert info.value.code is ErrorCode.INVALID_REQUEST, bad
    with pytest.raises(TypeError):
        split(b"bytes", "read")
    with pytest.raises(TypeError):
        split(None, "read")


def test_split_remembers_accepted_paths_only_and_within_a_bound():
    from dictamesh_connectors.file import paths

    assert split("cache/me", "read") is split("cache/me", "read")  # the remembered tuple
    for _ in range(2):  # a refusal is never remembered: refused again
        with pytest.raises(ConnectorError):
            split("cache/../me", "read")
    assert "cache/../me" not in paths._SPLIT
    for n in range(paths._SPLIT_MAX + 10):
        assert split(f"many/{n}", "read") == ("many", str(n))
    assert len(paths._SPLIT) <= paths._SPLIT_MAX


def test_absolute_paths_are_never_echoed():
    with pytest.raises(ConnectorError) as info:
        split("/home/someone/secret", "read")
    assert "someone" not in str(info.value)


def test_symlinks_refused_when_follow_is_off(files, root, tmp_path):
    (root / "real").mkdir()
    (root / "real" / "f").write_text("inside")
    os.symlink("real", root / "inner")
    os.symlink("real/f", root / "flink")
    for path in ("inner/f", "flink", "inner"):
        for verb in (files.read_bytes, files.stat, files.list):
            with pytest.raises(ConnectorError) as info:
                verb(path)
            assert info.value.code is ErrorCode.PERMISSION_DENIED, (verb, path)
    with pytest.raises(ConnectorError) as info:
        files.write_text("inner/new", "x")
    assert info.value.code is ErrorCode.PERMISSION_DENIED
    with pytest.raises(ConnectorError) as info:
        files.write_text("flink", "replace the link?")
    assert info.value.code is ErrorCode.PERMISSION_DENIED
    assert os.path.islink(root / "flink")
    assert [i.name for i in files.list() if i.is_symlink] == ["flink", "inner"]


def test_symlinks_inside_followed_outside_refused(following, root, tmp_path):
    (root / "real").mkdir()
    (root / "real" / "f").write_text("inside")
    os.symlink("real", root / "inner")
    os.symlink("../real/f", root / "real" / "up")  # .. that stays inside
    os.symlink(str(root / "real" / "f"), root / "absolute_inside")
    os.symlink("../outside", root / "escape")
    os.symlink(str(tmp_path / "outside" / "secret.txt"), root / "absolute_escape")
    os.symlink("loop", root / "loop")
    assert following.read_text("inner/f") == "inside"
    assert following.read_text("real/up") == "inside"
    assert following.read_text("absolute_inside") == "inside"
    following.write_text("inner/new", "via link")
    assert (root / "real" / "new").read_text() == "via link"
    for path in ("escape/secret.txt", "absolute_escape", "escape"):
        with pytest.raises(ConnectorError) as info:
            following.read_bytes(path)
        assert info.value.code is ErrorCode.PERMISSION_DENIED, path
    with pytest.raises(ConnectorError) as info:
        following.write_text("escape/planted", "x")
    assert info.value.code is ErrorCode.PERMISSION_DENIED
    assert not (tmp_path / "outside" / "planted").exists()
    with pytest.raises(ConnectorError) as info:
        following.read_bytes("loop")
    assert info.value.code is ErrorCode.INVALID_REQUEST


# A small alphabet that hits the interesting cases often.
components = st.one_of(
    st.sampled_from(["..", ".", "", "a", "b", "outside", "root", "link", "\x00", "~", "..."]),
    st.text(min_size=1, max_size=8),
    st.sampled_from(["x" * 255, "é" * 128, "x" * 256]),  # the 255-byte name limit, both sides
)
paths = st.builds(
    lambda lead, parts: lead + "/".join(parts),
    st.sampled_from(["", "", "", "/", "//", "./", "../"]),
    st.lists(components, min_size=0, max_size=6),
)

DOCUMENTED = {
    ErrorCode.PERMISSION_DENIED,  # .., absolute, NUL, symlinks
    ErrorCode.INVALID_REQUEST,  # unencodable, too long, root, not a directory, reserved
    ErrorCode.NOT_FOUND,  # a missing directory on the way
    ErrorCode.CONFLICT,  # mkdir of an existing path
    ErrorCode.SERIALIZATION_ERROR,  # never for paths; listed so a failure says why
}


def snapshot(path: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames:
            out[os.path.join(dirpath, name)] = None
        for name in filenames:
            out[os.path.join(dirpath, name)] = Path(dirpath, name).read_bytes()
    return out


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    base = tmp_path_factory.mktemp("arena")
    (base / "outside").mkdir()
    (base / "outside" / "a").write_text("keep")
    (base / "root").mkdir()
    (base / "root" / "a").mkdir()
    os.symlink("../outside", base / "root" / "link")
    connectors = [
        FileConnector(FileConfig(root=str(base / "root"), follow_symlinks=follow, fsync=False))
        for follow in (False, True, False, True)
    ]
    for c in connectors:
        c.connect()
    for c in connectors[2:]:
        c._handle.sandbox.beneath = None  # the walk alone; the first two use openat2
    yield base, connectors
    for c in connectors:
        c.disconnect()


@settings(
    max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=paths, verb=st.sampled_from(["write", "read", "mkdir", "list", "stat", "delete"]))
def test_random_paths_never_escape(arena, path, verb):
    base, connectors = arena
    before = snapshot(base / "outside")
    for files in connectors:
        action = {
            "write": lambda p, files=files: files.write_text(p, "planted"),
            "read": files.read_bytes,
            "mkdir": lambda p, files=files: files.mkdir(p, parents=True, exist_ok=True),
            "list": files.list,
            "stat": files.stat,
            "delete": files.delete,
        }[verb]
        try:
            action(path)
        except ConnectorError as err:
            assert err.code in DOCUMENTED - {ErrorCode.SERIALIZATION_ERROR}, (path, err)
            assert str(base) not in str(err), err
        except TypeError:
            pytest.fail(f"TypeError for a str path {path!r}")
    assert snapshot(base / "outside") == before


def counting(files: FileConnector) -> list[bytes]:
    """Record every path the connector hands to openat2."""
    sandbox = files._handle.sandbox
    fast = sandbox.beneath
    assert fast is not None
    seen: list[bytes] = []

    def spy(dir_fd: int, path: bytes, directory: bool) -> int:
        seen.append(path)
        return fast(dir_fd, path, directory)

    sandbox.beneath = spy
    return seen


@pytest.fixture
def fast(root: Path) -> Iterator[tuple[FileConnector, FileConnector]]:
    """A connector and a symlink-following one, both on openat2 (skipped without it)."""
    from tests.unit.file.conftest import openat2_works

    if not openat2_works(root):
        pytest.skip("this kernel (or its seccomp filter) has no openat2")
    pair = (
        FileConnector(FileConfig(root=str(root))),
        FileConnector(FileConfig(root=str(root), follow_symlinks=True)),
    )
    for connector in pair:
        connector.connect()
    yield pair
    for connector in pair:
        connector.disconnect()


def test_openat2_resolves_deep_paths_in_one_call(fast, root):
    files = fast[0]
    seen = counting(files)
    files.mkdir("a/b/c", parents=True)
    files.write_text("a/b/c/f", "deep")
    seen.clear()
    assert files.read_text("a/b/c/f") == "deep"
    assert seen == [b"a/b/c/f"]  # one call, no walk
    seen.clear()
    files.write_text("a/b/c/g", "also")  # the directory a/b/c in one call
    assert seen == [b"a/b/c"]
    assert (root / "a" / "b" / "c" / "g").read_text() == "also"
    seen.clear()
    assert [i.name for i in files.list("a/b/c")] == ["f", "g"]
    assert seen == [b"a/b/c"]


def test_openat2_refusals_fall_back_to_the_walk(fast, root, tmp_path):
    files, following = fast
    (root / "real" / "sub").mkdir(parents=True)
    (root / "real" / "sub" / "f").write_text("inside")
    os.symlink("real", root / "inner")  # a link inside, on the way
    os.symlink(str(tmp_path / "outside"), root / "real" / "out")  # an absolute link out
    for connector in (files, following):
        seen = counting(connector)
        with pytest.raises(ConnectorError) as info:
            connector.read_bytes("real/out/secret.txt")
        assert info.value.code is ErrorCode.PERMISSION_DENIED  # openat2 said no; the walk why
        assert seen == [b"real/out/secret.txt"]
        with pytest.raises(ConnectorError) as info:
            connector.read_bytes("real/sub/missing")
        assert info.value.code is ErrorCode.NOT_FOUND
        assert "real/sub/missing" in str(info.value)
    with pytest.raises(ConnectorError) as info:
        files.read_bytes("inner/sub/f")
    assert info.value.code is ErrorCode.PERMISSION_DENIED
    assert (
        following.read_text("inner/sub/f") == "inside"
    )  # refused by openat2, followed by the walk
    following.write_text("inner/sub/g", "via the link")
    assert (root / "real" / "sub" / "g").read_text() == "via the link"
    assert not list((tmp_path / "outside").glob("g"))


def test_openat2_unavailable_means_the_walk(root, monkeypatch):
    from dictamesh_connectors.file import beneath

    monkeypatch.setattr(beneath, "_built", [None])  # as on a kernel without it
    with FileConnector(FileConfig(root=str(root))) as files:
        assert files._handle.sandbox.beneath is None
        files.mkdir("x/y", parents=True)
        files.write_text("x/y/z", "walked")
        assert files.read_text("x/y/z") == "walked"
    monkeypatch.setattr(beneath, "_built", [lambda fd, path, directory: -1])  # ENOSYS, seccomp
    with FileConnector(FileConfig(root=str(root))) as files:
        assert files._handle.sandbox.beneath is None  # the probe failed: never called again
        assert files.read_text("x/y/z") == "walked"
