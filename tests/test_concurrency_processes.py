"""Several annpred processes, forked children and process-wide state (audit s37):
checkpoint appends of two processes stay whole lines, a feedback export never deletes a file
another process is writing, writing a file never changes the umask other threads see,
overlapping dispatched calls restore the thread count, and a child forked while another
thread held a runtime lock decides with the parent's models."""
from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from annpred.data.rows import CsvLock
from annpred.errors import DataError
from annpred.files import JsonlCheckpoint, atomic_write_text
from annpred.runtime import caches
from annpred.threads import limit_threads, shared_limit_threads
from annpred.runtime.predictor import Predictor
from annpred.select import Feedback, choose

from synthetic_models import load_toy_kernel
from test_concurrency import POINTS, versions  # noqa: F401  (versions: a fixture)

posix = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _wait(pid: int, seconds: float = 20.0) -> int:
    """The exit code of child ``pid``; killed (-9) if it hangs (a deadlock)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -9


@posix
def test_two_processes_appending_to_one_checkpoint_lose_no_record(tmp_path):
    """Two trainings into one --out append to one checkpoint: every record of both is read
    back (a guard: appends are whole lines; the models themselves are written atomically)."""
    path = tmp_path / "ckpt.jsonl"
    pids = []
    for who in range(2):
        pid = os.fork()
        if pid == 0:  # child: 20 batches of 4 records of ~3 kB
            code = 1
            try:
                ck = JsonlCheckpoint(path, "k")
                for b in range(20):
                    ck.append({"who": who, "b": b, "i": i, "pad": "x" * 3000}
                              for i in range(4))
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    assert [_wait(p) for p in pids] == [0, 0]
    ck = JsonlCheckpoint(path, "k")
    got = {(r["who"], r["b"], r["i"]) for r in ck.load()}
    assert len(got) == 160 and ck.ignored == 0


def test_feedback_export_does_not_delete_a_file_another_process_writes(tmp_path):
    load_toy_kernel("toy_kernel_for_concurrency")
    path = tmp_path / "fb.csv"
    atomic_write_text(path, "being written\n")
    fb = Feedback()
    fb.records.append(_record())
    with CsvLock(path):  # another exporter (or profiler) of this file holds it
        with pytest.raises(DataError, match="another annpred process"):
            fb.to_csv(path)
    assert path.read_text() == "being written\n"
    fb.to_csv(path)  # once it is free: a fresh file
    assert path.read_text().count("\n") == 2


def test_an_interrupted_feedback_export_leaves_the_old_file_whole(tmp_path, monkeypatch):
    import annpred.runtime.feedback as feedback

    load_toy_kernel("toy_kernel_for_concurrency")
    path = tmp_path / "fb.csv"
    fb = Feedback()
    fb.records += [_record(), _record()]
    fb.to_csv(path)
    before = path.read_text()
    real = feedback.RowWriter.write
    calls = []

    def interrupted(self, *a, **kw):  # Ctrl-C after the first row of the new export
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    monkeypatch.setattr(feedback.RowWriter, "write", interrupted)
    fb.records.append(_record())
    with pytest.raises(KeyboardInterrupt):
        fb.to_csv(path)
    assert path.read_text() == before  # two rows, not one or a torn three
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["fb.csv", "fb.csv.lock", "fb.csv.machine.json"])  # no temporary leftovers
    monkeypatch.undo()
    fb.to_csv(path)
    assert path.read_text().count("\n") == 4


def _record():
    from annpred.runtime.feedback import FeedbackRecord

    return FeedbackRecord("toy", {"n": 100}, "cumsum", "cpu-x-t1", 1e-5, 2e-5, True, False)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux: /proc umask")
def test_an_atomic_write_does_not_change_the_umask_other_threads_see(tmp_path, monkeypatch):
    calls = []
    real = os.umask
    old = real(0o077)
    try:
        monkeypatch.setattr(os, "umask", lambda m: calls.append(m) or real(m))
        atomic_write_text(tmp_path / "new.txt", "x")
    finally:
        real(old)
    assert calls == []
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o600


def test_overlapping_dispatched_calls_restore_the_thread_count():
    """Thread A limited BLAS to 1 thread, thread B (entering meanwhile) to 2; A restored the
    original count under B, B restored A's 1: the process kept 1 thread for good."""
    tp = pytest.importorskip("threadpoolctl")

    def counts():
        return [i["num_threads"] for i in tp.threadpool_info()]

    before = counts()
    if not before:
        pytest.skip("no BLAS/OpenMP pool that threadpoolctl controls")
    want = {}
    for key, n in (("a", 1), ("b", 2)):  # what one call alone sees (a pool may cap its count)
        with limit_threads(n):
            want[key] = counts()
    if want["a"] == want["b"]:
        pytest.skip("no pool here can tell 1 thread from 2")
    a_in, b_try = threading.Event(), threading.Event()
    seen = {}

    def a():
        with shared_limit_threads(1):
            a_in.set()
            b_try.wait(5)
            time.sleep(0.05)  # let B reach the limit (before the fix it changed it here)
            seen["a"] = counts()

    def b():
        a_in.wait(5)
        b_try.set()
        with shared_limit_threads(2):
            seen["b"] = counts()

    ts = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert seen == want
    assert counts() == before


@posix
def test_a_child_forked_while_a_runtime_lock_was_held_decides_as_the_parent(versions):
    """The parent's Predictor and plans work in a forked child, even when another thread of
    the parent held the caches' locks at the fork (the child used to wait for ever)."""
    root, want = versions
    pred = Predictor([root / "A"])
    parent = [choose("toy", {"n": n}, models=pred) for n in POINTS]
    held, release = threading.Event(), threading.Event()

    def holder():
        with caches.LOCK:
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                caches.clear()  # takes LOCK
                got = [choose("toy", {"n": n}, models=pred) for n in POINTS]  # BUILD
                code = 0 if got == parent == [want["A", None, n] for n in POINTS] else 3
            finally:
                os._exit(code)
    finally:
        release.set()
        t.join()
    assert _wait(pid) == 0
    sys.stdout.flush()


def test_two_calibrations_saving_at_once_keep_both_corrections(tmp_path):
    """save read, merged and wrote the calibration file without a lock: a calibration of
    another model finishing at the same moment (here: holding the file's lock while it
    merges) was overwritten, its correction lost. save now waits for the lock and merges."""
    from annpred.model import correction as corr
    from annpred.spec import hardware as hw

    def one(variant):
        return {"kernel": "toy", "variant": variant, "hardware": "cpu-x-t1",
                "model_digest": "0" * 16, "form": "factor", "offset": 0.1, "slope": 0.0,
                "ref": -9.0, "lo": -12.0, "hi": -4.0, "n_probes": 3}

    machine = hw.machine()
    path = corr.path_for(tmp_path, machine["fingerprint"])
    path.parent.mkdir(parents=True)
    holding = threading.Event()

    def other_process():  # another calibration in its read-merge-write
        with CsvLock(path):
            holding.set()
            time.sleep(0.3)
            corr.atomic_write_text(path, corr.json.dumps(corr.validate(
                {"format": corr.FORMAT, "machine": machine, "corrections": [one("a")]},
                str(path))))

    t = threading.Thread(target=other_process)
    t.start()
    holding.wait(5)
    corr.save(tmp_path, machine, [one("b")])
    t.join(5)
    kept = sorted(c["variant"] for c in corr.load(path)["corrections"])
    assert kept == ["a", "b"]
