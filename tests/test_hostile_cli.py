"""Issue 11, finding 3 (output paths): every command checks where it will write before it
works, and says so in one line with exit code 2."""
from test_hostile_csv import HEAD, _cli_error, _csv, _rows


def test_evaluate_out_blocked_by_a_file(tmp_path, cli):
    p = _csv(tmp_path, [HEAD, *_rows(40)])
    (tmp_path / "blocker").write_text("x")
    line = _cli_error(cli(["evaluate", p, "--out", tmp_path / "blocker", "--quiet"]))
    assert "not a directory" in line
    _cli_error(cli(["evaluate", p, "--out", "/proc/annpred-study", "--quiet"]))
    line = _cli_error(cli(["evaluate", p, "--out", tmp_path / "s", "--features", "m,m"]))
    assert "twice" in line and not (tmp_path / "s").exists()


def test_profile_out_is_a_directory(tmp_path, cli, toy_env):
    (tmp_path / "d.csv").mkdir()
    line = _cli_error(cli(["profile", "toy", "--out", tmp_path / "d.csv", "--quiet"],
                          env=toy_env))
    assert "directory" in line


def test_quickstart_refuses_a_bad_out_and_seed(tmp_path, cli, toy_env):
    (tmp_path / "blocker").write_text("x")
    _cli_error(cli(["quickstart", "--out", tmp_path / "blocker"], env=toy_env))
    _cli_error(cli(["quickstart", "--out", tmp_path / "q", "--seed", "-1"], env=toy_env))
    assert not (tmp_path / "q").exists()


def test_options_that_named_nothing_or_twice_are_refused(tmp_path, capsys):
    """Found by a second audit: these ran (every model, epochs 0) or ended in a traceback
    after writing part of the study."""
    import pytest

    from annpred.cli.app import main

    p = _csv(tmp_path, [HEAD, *_rows(40)])
    out = tmp_path / "ev"
    base = ["evaluate", str(p), "--out", str(out), "--n-train", "16", "--n-test", "10",
            "--seeds", "1", "--no-curves", "--no-cost", "--no-plots", "--quiet"]
    for extra, words in ((["--models", "Cons,Cons"], "'Cons' is given twice"),
                         (["--models", ""], "no model named"),
                         (["--models", " , "], "no model named"),
                         (["--models", "NN", "--max-epochs", "0"], "--max-epochs must be")):
        assert main(base + extra) == 2
        assert words in capsys.readouterr().err
        assert not out.exists()
    with pytest.raises(SystemExit):  # argparse: not even a number
        main(["tune-space", str(p), "--seed", "x"])
    capsys.readouterr()
    assert main(["tune-space", str(p), "--budget", "20", "--seed", "-1"]) == 2
    assert "--seed must be between 0 and" in capsys.readouterr().err


def test_an_output_that_is_the_input_is_refused(tmp_path, capsys):
    """export -o MODEL.json (and predict --output of its --input, convert -o of its cache)
    replaced the input with the output."""
    import json
    import shutil
    from pathlib import Path

    from annpred.cli.app import main

    repo = Path(__file__).resolve().parent.parent
    model = tmp_path / "numpy.json"
    shutil.copy(repo / "trained" / "cpu-amd-epyc-t1" / "matmul" / "numpy.json", model)
    before = model.read_text()
    assert main(["export", str(model), "--format", "c", "-o", str(model)]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert model.read_text() == before and json.loads(before)["kernel"] == "matmul"
    pts = tmp_path / "pts.csv"
    pts.write_text("m,n,k,da,db\n64,64,64,1,1\n")
    assert main(["predict", "matmul", "--variant", "numpy", "--models",
                 str(repo / "trained"), "--input", str(pts), "--output", str(pts)]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert pts.read_text() == "m,n,k,da,db\n64,64,64,1,1\n"
    cache = tmp_path / "c.json"
    cache.write_text("{}")
    assert main(["convert", str(cache), "-o", str(cache)]) == 2
    assert "is the input file" in capsys.readouterr().err and cache.read_text() == "{}"


def test_choose_refuses_candidate_names_no_model_could_have(capsys):
    from annpred.cli.app import main

    for opt, value in (("--candidate", "numpy@../../x"), ("--default", "numpy@../x"),
                       ("--candidate", "../v@cpu-x-t1")):
        assert main(["choose", "matmul", "m=64", "n=64", "k=64", opt, value]) == 2
        err = capsys.readouterr().err
        assert "cannot be used in a file name" in err and value in err


def test_batch_predict_names_the_file_line_and_the_bad_value(tmp_path, capsys):
    """Text in a parameter column read as a missing column; rows were 0-based indices and
    values numpy reprs (np.float64(nan))."""
    from pathlib import Path

    from annpred.cli.app import main

    models = str(Path(__file__).resolve().parent.parent / "trained")
    for row, words in (("abc,64,64,1,1", "row 3, column 'm': not a number: 'abc'"),
                       ("-5,64,64,1,1", "row 3: parameter m=-5.0 is invalid"),
                       ("64,64,64,1,1.5", "row 3: parameter db")):
        p = tmp_path / "pts.csv"
        p.write_text(f"m,n,k,da,db\n64,64,64,1,1\n{row}\n")
        assert main(["predict", "matmul", "--variant", "numpy", "--models", models,
                     "--input", str(p), "--output", str(tmp_path / "o.csv")]) == 2
        err = capsys.readouterr().err
        assert words in err and "np.float64" not in err, err
