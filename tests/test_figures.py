"""The study's figures say which data, models, training sizes and seeds they come from."""
import pandas as pd
import pytest

from annpred import study as E
from annpred.data.profiles import load_profiles
from conftest import REPO, experiment_script as _script
from test_evaluate import COMPLEXITY, synthetic_csv


def _csv(folder, hardware):
    folder.mkdir()
    path = synthetic_csv(folder / "s.csv")
    df = pd.read_csv(path)
    df["hardware"] = hardware
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def figures(tmp_path_factory, request):
    """The figures of a small study of two CSVs that share their file name (two folders,
    two machines), one variant each, with the fast models only (no network: NN+C absent)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from annpred.study import plots as P

    tmp = tmp_path_factory.mktemp("figs")
    paths = [_csv(tmp / "a", "cpu-test-t1"), _csv(tmp / "b", "cpu-test-t2")]
    df = load_profiles(paths, variant="fast")
    cfg = E.Config(n_train=40, seeds=2, curve_sizes=(20, 40), curve_seeds=1,
                   models=("Cons", "LR+C"))
    res = E.evaluate(df, cfg, complexity=COMPLEXITY, progress=False, cost=False)
    figs = {}
    mp = pytest.MonkeyPatch()
    mp.setattr(P, "_save", lambda fig, path: figs.setdefault(path.name, fig))
    mp.setattr(plt, "close", lambda fig=None: None)
    try:
        P.plots(res, tmp)
    finally:
        mp.undo()
    yield figs
    for fig in figs.values():
        plt.close(fig)


def _texts(fig) -> str:
    return "\n".join(t.get_text().replace("\n", " ") for t in fig.texts)


def test_pred_vs_measured_names_its_own_hardware_model_and_training(figures):
    fig = figures["pred_vs_measured_cpu-test-t1.png"]
    title = fig._suptitle.get_text()
    assert "Cons (2 parameters, seed 0)" in title and "< 75" not in title, title
    note = _texts(fig)
    assert "on cpu-test-t1;" in note and "cpu-test-t2" not in note, note
    assert "1 combination;" in note, note  # its one panel, not the study's two
    assert "a/s.csv" in note and "b/s.csv" not in note, note
    assert "40 training points" in note and "2 seeds" in note, note


def test_mape_by_combination_names_the_plotted_models_and_labels_both_axes(figures):
    fig = figures["mape_by_combination.png"]
    ax = fig.axes[0]
    assert ax.get_title() == "Test MAPE per combination: Cons, LR+C", ax.get_title()
    assert "MAPE (%)" in ax.get_xlabel() and "combination" in ax.get_ylabel()
    note = _texts(fig)
    assert "a/s.csv, b/s.csv" in note and "2 combinations" in note, note
    assert "40 training points" in note and "mean over 2 seeds" in note, note


def test_learning_curves_state_sizes_seeds_and_models(figures):
    note = _texts(figures["learning_curves.png"])
    assert "training sizes 20, 40, mean over 1 seed per size" in note, note
    assert "models: Cons, LR+C" in note and "a/s.csv, b/s.csv" in note, note


def test_file_labels_disambiguate_equal_names_by_their_folders():
    from annpred.study.plots import _file_labels

    got = _file_labels(["/x/t1/data/m.csv", "/x/t2/data/m.csv", "/x/t2/data/k.csv"])
    assert got == {"/x/t1/data/m.csv": "t1/data/m.csv", "/x/t2/data/m.csv": "t2/data/m.csv",
                   "/x/t2/data/k.csv": "k.csv"}


# -- the experiments' scripts (loaded from their files; nothing is measured or compiled) ---


def _capture(monkeypatch):
    """The figures the scripts save (annpred.study.plots.save_png), by file name."""
    from annpred.study import plots as P

    figs = {}
    monkeypatch.setattr(P, "save_png", lambda fig, path, dpi=110: figs.setdefault(
        path.name, fig))
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "close", lambda fig=None: None)
    return figs


def _inside(fig, text):
    fig.canvas.draw()
    e, box = text.get_window_extent(fig.canvas.get_renderer()), fig.bbox
    return e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1 and e.y1 <= box.y1 + 1


def _partial(out, hardware, candidates=64):
    out.mkdir()
    pd.DataFrame([{"pipeline": "blur", "size": "512x512", "method": m, "runtime_s": 1e-4,
                   "n_candidates": candidates, "threads": 2, "hardware": hardware}
                  for m in ("annpred", "adams2019")]).to_csv(out / "halide_partial.csv",
                                                             index=False)


@pytest.mark.parametrize("stored", [True, False])  # settings file, or only the rows (old)
def test_halide_refuses_to_resume_results_of_other_settings(tmp_path, stored):
    import json
    import subprocess
    import sys

    from annpred.spec import hardware as hw

    out = tmp_path / "out"
    _partial(out, hw.cpu_id(2))
    if stored:
        (out / "halide_partial_settings.json").write_text(json.dumps(
            {"candidates": 64, "rounds": 2, "threads": 2, "hardware": hw.cpu_id(2)}))
    r = subprocess.run([sys.executable, str(REPO / "experiments" / "halide.py"),
                        "--pipelines", "blur", "--sizes", "1", "--rounds", "2",
                        "--candidates", "16", "--out", str(out), "--trained",
                        str(tmp_path / "none"), "--quiet"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    assert "--candidates 64 (this run: 16)" in r.stderr and "--fresh" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (out / "halide.md").exists()


def test_halide_settings_check_passes_the_same_settings(tmp_path):
    import argparse

    from annpred.spec import hardware as hw

    h = _script("halide")
    out = tmp_path / "out"
    _partial(out, hw.cpu_id(2))
    args = argparse.Namespace(candidates=64, rounds=2, threads=2)
    h.check_settings(out / "halide_partial.csv", args)  # old rows: adopted, then stored
    assert (out / "halide_partial_settings.json").is_file()
    with pytest.raises(SystemExit, match="--rounds 2 .this run: 3."):
        h.check_settings(out / "halide_partial.csv", argparse.Namespace(
            candidates=64, rounds=3, threads=2))
    _partial(tmp_path / "other", "cpu-elsewhere-t2")
    with pytest.raises(SystemExit, match="machine cpu-elsewhere-t2"):
        h.check_settings(tmp_path / "other" / "halide_partial.csv", args)


def test_halide_figure_names_its_csv_and_keeps_its_title_inside(tmp_path, monkeypatch):
    h = _script("halide")
    df = pd.read_csv(REPO / "experiments" / "results" / "halide.csv")
    figs = _capture(monkeypatch)
    h.plot(df[df["pipeline"] == "blur"], tmp_path / "halide.png")
    title = figs["halide.png"]._suptitle
    assert str(tmp_path / "halide.csv") in title.get_text().replace("\n", " ")
    assert "experiments/results" not in title.get_text()
    assert _inside(figs["halide.png"], title)


def test_sampling_figure_states_its_seeds_test_points_and_data(tmp_path, monkeypatch):
    s = _script("sampling")
    df = pd.read_csv(REPO / "experiments" / "results" / "sampling.csv")
    one = df[(df["kernel"] == "blur") & (df["variant"] == "scipy")].assign(seeds=5,
                                                                           n_test=120)
    figs = _capture(monkeypatch)
    s.plot(one, tmp_path / "sampling.png")
    fig = figs["sampling.png"]
    title = fig._suptitle.get_text().replace("\n", " ")
    assert "5 training seeds" in title and "120 held-out" in title, title
    assert "3 training" not in title and "200" not in title, title
    note = _texts(fig)
    hw_id = one["hardware"].iloc[0]
    assert f"data: {tmp_path / 'data' / hw_id}/" in note, note
    assert _inside(fig, fig._suptitle)
