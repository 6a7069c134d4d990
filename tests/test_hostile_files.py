"""Issue 11, finding 4: nothing half-written. Atomic writes keep the umask's permissions,
clean their temporary files (also those of killed writers), and training several
combinations writes all of them or none."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from annpred.errors import AnnpredError, DataError, ExpressionError
from annpred.files import atomic_write_many, atomic_write_text, remove_stale_temps
from annpred.model.trainer import train_csvs

from test_hostile_csv import HEAD, _csv, _rows

REPO = Path(__file__).resolve().parent.parent


def _temps(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_new_files_follow_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        p = atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == mode


def test_replaced_file_keeps_its_mode(tmp_path):
    p = tmp_path / "a.h"
    p.write_text("old")
    p.chmod(0o640)
    atomic_write_text(p, "new")
    assert p.read_text() == "new" and p.stat().st_mode & 0o777 == 0o640


KILLED_WRITER = """
import sys, time
from annpred import files
files._write_temp(files.Path(sys.argv[1]), b"half")
print("ready", flush=True)
time.sleep(60)
"""


def test_temp_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "x.json"
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)],
                                stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert len(_temps(tmp_path)) == 1  # each writer removed its killed predecessor's
    atomic_write_text(target, "{}")
    assert _temps(tmp_path) == [] and target.read_text() == "{}"


def test_a_live_writers_temp_file_is_left_alone(tmp_path):
    mine = tmp_path / f".x.json.{os.getpid()}.abc.tmp"
    mine.write_text("busy")
    assert remove_stale_temps(tmp_path / "x.json") == 0 and mine.exists()


def test_failed_write_leaves_nothing(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(AnnpredError, match="directory"):
        atomic_write_text(tmp_path / "d", "x")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(AnnpredError, match="cannot write"):
        atomic_write_text(blocker / "sub" / "a.json", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "file"]


def test_write_many_is_all_or_none(tmp_path):
    (tmp_path / "blocked").write_text("a file where a folder is needed")
    with pytest.raises(AnnpredError):
        atomic_write_many({tmp_path / "new" / "a.json": "1", tmp_path / "b.json": "2",
                           tmp_path / "blocked" / "c.json": "3"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked"]
    atomic_write_many({tmp_path / "new" / "a.json": "1", tmp_path / "b.json": "2"})
    assert (tmp_path / "new" / "a.json").read_text() == "1"


def test_training_two_combinations_writes_both_or_none(tmp_path):
    rows = _rows(12, 0, variant="v1") + _rows(12, 1, variant="v2", start=100)
    cells = rows[-1].split(",")
    cells[3] = "12"  # only the second combination reaches the pole of 1/(m-12)
    rows[-1] = ",".join(cells)
    p = _csv(tmp_path, [HEAD, *rows])
    out = tmp_path / "models"
    with pytest.raises((ExpressionError, DataError), match="not finite|NaN or infinite"):
        train_csvs([p], out, features=["m", "n"], complexity="1/(m-12)", max_epochs=5,
                   n_init=1, steps=None)
    assert not out.exists()
    reports = train_csvs([p], out, features=["m", "n"], complexity="m*n", max_epochs=5,
                         n_init=1, steps=None)
    assert len(reports) == 2 and all(r.path.exists() for r in reports)
    assert _temps(reports[0].path.parent) == []


def _count_fits(monkeypatch):
    from annpred.model.estimator import AugmentedNNRegressor

    fitted, real = [], AugmentedNNRegressor.fit

    def fit(self, X, y, *a, **k):
        fitted.append(len(y))
        return real(self, X, y, *a, **k)

    monkeypatch.setattr(AugmentedNNRegressor, "fit", fit)
    return fitted


TRAIN_KW = dict(features=["m", "n"], complexity="m*n", max_epochs=5, n_init=1, steps=None)


def _interrupted_after_one(tmp_path, monkeypatch):
    """Two combinations in one CSV, trained into ``models`` with Ctrl-C after the first:
    ``(csv, out, fitted)``, ``fitted`` the row counts of every fit so far ([12])."""
    from annpred.model.trainer import CHECKPOINT

    p = _csv(tmp_path, [HEAD, *_rows(12, 0, variant="v1"),
                        *_rows(12, 1, variant="v2", start=100)])
    out = tmp_path / "models"
    fitted = _count_fits(monkeypatch)

    def stop(rep):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_csvs([p], out, on_done=stop, **TRAIN_KW)
    assert fitted == [12] and (out / CHECKPOINT).exists()
    return p, out, fitted


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Ctrl-C after the first of two combinations: no model file is written, the finished
    one is kept in the checkpoint, and the same call again fits only the second one."""
    from annpred.model.trainer import CHECKPOINT

    p, out, fitted = _interrupted_after_one(tmp_path, monkeypatch)
    kw = TRAIN_KW

    def stop(rep):
        raise KeyboardInterrupt

    assert not list(out.rglob("*.json"))  # no model file before all are trained
    said = []
    reports = train_csvs([p], out, progress=said.append, **kw)
    assert fitted == [12, 12]  # the first combination was read back, not fitted again
    assert any("resuming: 1 of 2" in s for s in said)
    assert [r.variant for r in reports] == ["v1", "v2"] and all(r.path.exists() for r in reports)
    assert not (out / CHECKPOINT).exists()
    # other options are another job: nothing is resumed from its checkpoint
    with pytest.raises(KeyboardInterrupt):
        train_csvs([p], out, on_done=stop, **kw)
    train_csvs([p], out, **{**kw, "seed": 1})
    assert fitted == [12] * 5


def test_interrupt_message_says_what_each_command_kept(monkeypatch, capsys, tmp_path):
    from annpred.cli import app
    import annpred.model.trainer as trainer
    import annpred.measure.calibrate as calibrate

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train_csvs", interrupt)
    monkeypatch.setattr(calibrate, "calibrate", interrupt)
    out = tmp_path / "m"
    assert app.main(["train", "x.csv", "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip()
    assert err == (f"annpred: interrupted; finished combinations are kept in "
                   f"{out}/.train_checkpoint.jsonl (the same command resumes); no model "
                   "was written")
    assert app.main(["calibrate", "--quick"]) == 130
    assert "nothing was saved" in capsys.readouterr().err
    monkeypatch.setenv(app.QUIET_INTERRUPT, "1")  # a child process of quickstart
    assert app.main(["calibrate", "--quick"]) == 130
    assert capsys.readouterr().err == ""


def test_jsonl_checkpoint_skips_torn_lines_and_other_keys(tmp_path):
    """A killed job leaves a torn last line; a job with other options left records of
    another key: neither is read back, and appends after the torn line still load."""
    from annpred.files import JsonlCheckpoint

    path = tmp_path / "ck.jsonl"
    JsonlCheckpoint(path, "a").append([{"task": [1], "v": 1.5}])
    JsonlCheckpoint(path, "b").append([{"task": [1], "v": 9.0}])
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"key": "a", "task": [2], "v"')  # torn: no value, no newline
    JsonlCheckpoint(path, "a").append([{"task": [3], "v": 3.0}])
    got = JsonlCheckpoint(path, "a").load()
    assert [(d["task"], d["v"]) for d in got] == [([1], 1.5), ([3], 3.0)]
    assert JsonlCheckpoint(tmp_path / "absent.jsonl", "a").load() == []


def test_a_model_worse_than_a_constant_is_not_installed_when_asked(tmp_path, monkeypatch):
    """quickstart with a tiny budget installed a model 10^7 % off on its held-out points
    into the user's model folder, where predict and choose then used it."""
    from annpred.data.profiles import load_profiles
    from annpred.model.estimator import AugmentedNNRegressor
    from annpred.model.trainer import CHECKPOINT, train_frame

    p = _csv(tmp_path, [HEAD, *_rows(40, 0, variant="v1"), *_rows(40, 1, variant="v2",
                                                                   start=100)])
    df = load_profiles([p])
    kw = dict(features=["m", "n"], complexity="m*n", max_epochs=5, n_init=1, steps=None,
              n_train=30)
    real = AugmentedNNRegressor.predict

    def off_for_v2(self, X):  # v2's model predicts 1000x its runtimes
        out = real(self, X)
        return out * 1000 if self._v2 else out

    monkeypatch.setattr(AugmentedNNRegressor, "predict", off_for_v2)
    real_fit = AugmentedNNRegressor.fit

    def fit(self, X, y, *a, **k):
        v1, v2 = (set(df[df.variant == v]["m"]) for v in ("v1", "v2"))
        self._v2 = set(X["m"]) <= v2 and not set(X["m"]) <= v1
        return real_fit(self, X, y, *a, **k)

    monkeypatch.setattr(AugmentedNNRegressor, "fit", fit)
    out = tmp_path / "m"
    reps = {r.variant: r for r in train_frame(df, out, keep_only_better=True, **kw)}
    assert reps["v1"].written and reps["v1"].path.exists()
    assert reps["v1"].holdout_mape < reps["v1"].constant_mape
    assert not reps["v2"].written and reps["v2"].path is None
    assert reps["v2"].holdout_mape > reps["v2"].constant_mape
    assert sorted(p.stem for p in out.rglob("*.json")) == ["v1"]
    assert not (out / CHECKPOINT).exists()
    reps = train_frame(df, tmp_path / "all", **kw)  # by default every model is written
    assert all(r.written and r.path.exists() for r in reps)


def test_a_second_training_into_one_model_folder_is_refused_and_keeps_the_first(tmp_path,
                                                                              monkeypatch):
    """Two `train` runs into one --out mixed their model files, and the one that failed
    deleted the other's checkpoint. The second now fails at once, naming the lock, and leaves
    the first run's checkpoint and models alone; once the first is done the folder is free."""
    from annpred.data.rows import CsvLock
    from annpred.errors import DataError
    from annpred.model.trainer import CHECKPOINT, TRAIN_LOCK

    p = _csv(tmp_path, [HEAD, *_rows(12, 0, variant="v1")])
    out = tmp_path / "models"
    out.mkdir()
    (out / CHECKPOINT).write_text("the first run's checkpoint\n")
    kw = dict(features=["m", "n"], complexity="m*n", max_epochs=5, n_init=1, steps=None)
    fitted = _count_fits(monkeypatch)
    with CsvLock(out / TRAIN_LOCK):  # the first run, still training
        with pytest.raises(DataError, match=r"another annpred process.*\.train\.lock"):
            train_csvs([p], out, **kw)
        assert fitted == [] and (out / CHECKPOINT).read_text() == "the first run's checkpoint\n"
    (out / CHECKPOINT).unlink()
    reports = train_csvs([p], out, **kw)
    assert fitted == [12] and reports[0].path.exists()


def test_a_checkpoint_of_other_code_is_not_resumed(tmp_path, monkeypatch):
    """The checkpoint key held annpred's version, which changes only at releases: fits made
    by other code (an upgrade, an edit) were resumed into the new run's models. The key now
    holds a hash of annpred's source; another hash means every combination is fitted again."""
    import annpred.files as files

    assert files.code_revision() == files.code_revision() and len(files.code_revision()) == 16
    p, out, fitted = _interrupted_after_one(tmp_path, monkeypatch)
    monkeypatch.setattr(files, "code_revision", lambda: "another-code-rev")
    train_csvs([p], out, **TRAIN_KW)
    assert fitted == [12, 12, 12]  # nothing read back: both fitted again
