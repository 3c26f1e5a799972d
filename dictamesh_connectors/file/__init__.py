"""File connector: sandboxed, atomic, lock-aware access to one directory tree.

Needs nothing beyond the standard library (POSIX: ``flock``, directory
descriptors). Every name is importable at once.

Example::

    from dictamesh_connectors.file import FileConfig, FileConnector

    with FileConnector(FileConfig.from_url("file:///var/data/inbox")) as files:
        for info in files.list(pattern="*.csv"):
            print(info.path, info.size)
"""

from __future__ import annotations

from dictamesh_connectors.file.atomic import AtomicWriter
from dictamesh_connectors.file.config import FileConfig
from dictamesh_connectors.file.connector import FileConnector, FileInfo
from dictamesh_connectors.file.errors import ArgumentTypeError
from dictamesh_connectors.file.locks import FileLock
from dictamesh_connectors.file.reader import FileReader
from dictamesh_connectors.file.txn import Transaction

__all__ = [
    "ArgumentTypeError",
    "AtomicWriter",
    "FileConfig",
    "FileConnector",
    "FileInfo",
    "FileLock",
    "FileReader",
    "Transaction",
]
