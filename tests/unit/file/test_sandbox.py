"""The sandbox: nothing outside the root is ever read or written, whatever the path."""

from __future__ import annotations

import os
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
        for follow in (False, True)
    ]
    for c in connectors:
        c.connect()
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
