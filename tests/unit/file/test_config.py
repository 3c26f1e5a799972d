"""FileConfig: URLs, environment, validation (hypothesis garbage included), pickling."""

from __future__ import annotations

import math
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.file import FileConfig
from dictamesh_connectors.file.config import MAX_FILE_SIZE


def test_from_url_reads_the_root_and_query():
    config = FileConfig.from_url("file:///var/data/inbox?read_only=true&file_mode=0640")
    assert config.root == "/var/data/inbox"
    assert config.read_only is True
    assert config.file_mode == 0o640
    assert FileConfig.from_url("file://localhost/srv/x").root == "/srv/x"
    assert FileConfig.from_url("file:///a%20b").root == "/a b"


def test_from_url_refuses_a_remote_host_and_other_schemes():
    with pytest.raises(InvalidConfigError, match="host"):
        FileConfig.from_url("file://server/share")
    with pytest.raises(InvalidConfigError, match="scheme"):
        FileConfig.from_url("http:///x")
    with pytest.raises(InvalidConfigError, match="unknown option"):
        FileConfig.from_url("file:///x?colour=blue")


def test_connection_string_round_trips():
    config = FileConfig(
        root="/srv/data dir",
        read_only=True,
        follow_symlinks=True,
        fsync=False,
        max_file_size=1024,
        file_mode=0o600,
        dir_mode=0o700,
        lock_timeout=math.inf,
        orphan_age=60,
        lock_suffix=".lck",
        chunk_size=4096,
    )
    assert FileConfig.from_url(config.connection_string()) == config
    assert FileConfig.from_url(FileConfig(root="/x").connection_string()) == FileConfig(root="/x")


def test_from_env():
    env = {"INBOX_URL": "file:///srv/inbox", "INBOX_READ_ONLY": "yes", "INBOX_DIR_MODE": "750"}
    config = FileConfig.from_env("INBOX_", env)
    assert (config.root, config.read_only, config.dir_mode) == ("/srv/inbox", True, 0o750)
    assert FileConfig.from_env("X_", {"X_ROOT": "/y"}).root == "/y"


def test_defaults_are_safe():
    config = FileConfig(root="/x")
    assert (config.read_only, config.follow_symlinks, config.fsync) == (False, False, True)
    assert config.lock_timeout == 30.0
    assert config.lock_suffix == ".lock"


@pytest.mark.parametrize(
    "fields",
    [
        {"root": ""},
        {"root": "a\x00b"},
        {"root": "\ud800"},
        {"root": 3},
        {"root": "/x", "file_mode": "999"},
        {"root": "/x", "file_mode": 0o10000},
        {"root": "/x", "dir_mode": True},
        {"root": "/x", "lock_timeout": -1},
        {"root": "/x", "lock_timeout": "nan"},
        {"root": "/x", "lock_timeout": 1e12},
        {"root": "/x", "orphan_age": 0.5},
        {"root": "/x", "max_file_size": -1},
        {"root": "/x", "max_file_size": MAX_FILE_SIZE + 1},
        {"root": "/x", "chunk_size": 0},
        {"root": "/x", "chunk_size": 2**31},
        {"root": "/x", "lock_suffix": "lock"},
        {"root": "/x", "lock_suffix": "./x"},
        {"root": "/x", "lock_suffix": ".\udcff\ud800"},
    ],
)
def test_bad_values_are_invalid_config(fields):
    with pytest.raises(InvalidConfigError):
        FileConfig.create(**fields)


def test_inf_means_no_limit_where_documented():
    assert FileConfig(root="/x", lock_timeout="inf").lock_timeout == math.inf
    assert FileConfig(root="/x", orphan_age="never").orphan_age == math.inf


garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(),
    st.binary(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(
        [
            "root",
            "create_root",
            "read_only",
            "follow_symlinks",
            "fsync",
            "max_file_size",
            "file_mode",
            "dir_mode",
            "lock_timeout",
            "orphan_age",
            "lock_suffix",
            "chunk_size",
        ]
    ),
    value=garbage,
)
def test_garbage_is_accepted_or_invalid_config_never_anything_else(field, value):
    fields = {"root": "/x", field: value}
    try:
        config = FileConfig.create(**fields)
    except InvalidConfigError:
        return
    config.validate()
    assert pickle.loads(pickle.dumps(config)) == config
    FileConfig.from_url(config.connection_string()) if config.root.startswith("/") else None


def test_pickles_and_compares():
    config = FileConfig(root="/srv", read_only=True)
    assert pickle.loads(pickle.dumps(config)) == config
    assert config.evolve(read_only=False) != config
