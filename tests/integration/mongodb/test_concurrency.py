"""One connector shared by 32 threads, a drain on disconnect, 1,000 lifecycles, and fork()."""

import gc
import os
import threading
import time
import warnings

import pytest

from dictamesh_connectors.errors import NotConnectedError
from dictamesh_connectors.mongodb import MongoDBConnector
from tests.forking import run_in_child

from .conftest import connected

pytestmark = pytest.mark.integration

THREADS = 32


def run_threads(n, target):
    errors = []

    def guarded(i):
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_32_threads_of_mixed_crud_give_exact_counts(server, db):
    rounds = 20
    # FerretDB 1.24 (SQLite) loses concurrent $inc on one document, with raw
    # pymongo as well (docs/mongodb.md): there each thread counts on its own.
    shared = server.name != "ferretdb"

    def counter(i):
        return "hits" if shared else f"hits-{i}"

    db.insert_many(
        "counters", [{"_id": counter(i), "n": 0} for i in range(1 if shared else THREADS)]
    )

    def work(i):
        for k in range(rounds):
            db.insert_one("items", {"t": i, "k": k})
            db.update_one("counters", {"_id": counter(i)}, {"$inc": {"n": 1}})
            assert db.find_one("items", {"t": i, "k": k})["k"] == k
            if k % 2:
                assert db.delete_one("items", {"t": i, "k": k}) == 1
            db.count("items", {"t": i})
        assert len(db.query("items", {"t": i})) == rounds // 2

    run_threads(THREADS, work)
    assert sum(d["n"] for d in db.query("counters")) == THREADS * rounds
    assert db.count("items") == THREADS * rounds // 2


def test_disconnect_during_load_drains_in_flight_work(server):
    with connected(server) as db:
        done = [0] * 16
        stop = threading.Event()
        started = threading.Barrier(17)

        def writer(i):
            started.wait()
            while not stop.is_set():
                try:
                    db.insert_one("log", {"w": i, "n": done[i]})
                except NotConnectedError:
                    return
                done[i] += 1

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        started.wait()
        while sum(done) < 200:
            time.sleep(0.01)
        db.disconnect()  # waits for the inserts in flight, refuses new ones
        stop.set()
        for t in threads:
            t.join()
        raw = server.raw()
        try:
            # Every insert that returned is there, and nothing else.
            assert raw[db.config.database]["log"].count_documents({}) == sum(done)
        finally:
            raw.close()
        db.connect()  # for the fixture's cleanup


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def settled(measure, limit, timeout=10.0):
    deadline = time.monotonic() + timeout
    while measure() > limit and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    return measure()


def test_1000_connect_disconnect_cycles_leak_no_sockets_threads_or_fds(server):
    db = MongoDBConnector(server.config())
    db.connect()
    db.ping()
    db.disconnect()
    gc.collect()
    fds, threads = open_fds(), threading.active_count()
    for _ in range(1000):
        db.connect()
        db.ping()
        db.disconnect()
    assert settled(open_fds, fds) <= fds
    assert settled(threading.active_count, threads) <= threads


def test_a_forked_child_builds_its_own_client_and_the_parent_keeps_working(db):
    db.insert_one("c", {"who": "parent-before"})
    parent_client = db._handle.client

    def child():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "MongoClient opened before fork" would raise
            db.insert_one("c", {"who": "child"})
            assert db._handle.client is not parent_client
            return db.count("c") == 2

    assert run_in_child(child) == 0
    assert db._handle.client is parent_client
    db.insert_one("c", {"who": "parent-after"})
    assert sorted(d["who"] for d in db.query("c")) == ["child", "parent-after", "parent-before"]


def test_a_fork_while_threads_use_the_connector(db):
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            db.find_one("c")

    threads = [threading.Thread(target=busy) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            assert run_in_child(lambda: db.insert_one("c", {}) is not None) == 0
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert db.count("c") == 3
