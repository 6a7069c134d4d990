"""Model files written by older annpred versions (tests/fixtures/old_formats/, copied from
the git history) load and predict what the code of their commit predicted; a file whose
complexity uses a function whose definition changed since is refused, naming the file."""
import json
import warnings
import shutil
from pathlib import Path

import numpy as np
import pytest

from annpred.errors import ModelFormatError
from annpred.model import schema
from annpred.runtime.predictor import LoadedModel

OLD = Path(__file__).parent / "fixtures" / "old_formats"

# (file, point, the old code's prediction in seconds). Each number was printed by the code
# of the commit that wrote the file: `git worktree add --detach /tmp/bc/<commit> <commit>`,
# then in that checkout `PYTHONPATH=/tmp/bc/<commit> python` running
# `LoadedModel(load_model(FILE), FILE).predict({p: np.array([v]) for p, v in point.items()})`
# (LoadedModel from annpred.predict or annpred.runtime.predictor, load_model from
# annpred.store or annpred.model.schema, whichever the commit has); the points are rows of
# the profiling CSV shipped in the same commit (see the README beside the fixtures).
CASES = [
    ("dd57aa9_matvec_numpy_amd-t1.json",  # commit dd57aa9
     {"n": 192.0, "m": 25.0, "density": 0.04533944449815245}, 1.021580256277003e-06),
    ("dd57aa9_matvec_numpy_amd-t1.json",
     {"n": 19.0, "m": 538.0, "density": 0.9389236257115062}, 1.981891162065607e-06),
    ("ea44d24_fft_numpy_amd-t1.json", {"n": 8.0, "b": 20.0}, 4.643917853874061e-06),  # ea44d24
    ("ea44d24_fft_numpy_amd-t1.json", {"n": 606.0, "b": 1.0}, 1.741190346964622e-05),
    ("1fe91f4_matmul_sparse_amd-t1.json",  # commit 1fe91f4
     {"n": 62.0, "k": 99.0, "m": 12.0, "da": 0.5919687866343188, "db": 0.008091114568868449},
     8.382028704527776e-06),
    ("1fe91f4_matmul_sparse_amd-t1.json",
     {"n": 9.0, "k": 737.0, "m": 145.0, "da": 0.004900932113514563,
      "db": 0.002183486293973005}, 4.16365976686409e-06),
    ("8bed715_maxpool_numpy_intel-t1.json",  # commit 8bed715
     {"n": 459.0, "w": 2.0, "s": 2.0, "c": 3.0}, 0.0005102540800150518),
    ("8bed715_maxpool_numpy_intel-t1.json",
     {"n": 154.0, "w": 3.0, "s": 3.0, "c": 13.0}, 0.00019690526135596683),
    ("1d822f1_fft_numpy_intel-t1.json", {"n": 105962.0, "b": 34.0}, 0.286168338454232),  # 1d822f1
    ("1d822f1_fft_numpy_intel-t1.json", {"n": 154.0, "b": 11.0}, 1.6973043266146154e-05),
    ("61dd60e_matvec_numpy_amd-t1.json", {"n": 871.0, "m": 37.0}, 2.005978648910707e-06),  # 61dd60e
    ("61dd60e_matvec_numpy_amd-t1.json", {"n": 19.0, "m": 538.0}, 1.8557882949556888e-06),
]


@pytest.mark.parametrize("name,point,old", CASES)
def test_an_old_model_file_predicts_what_its_own_code_predicted(name, point, old):
    path = OLD / name
    model = LoadedModel(schema.load_model(path), path)
    got = float(model.predict({p: np.array([v]) for p, v in point.items()})[0])
    assert got == pytest.approx(old, rel=1e-12)


def _with_functions(tmp_path, functions) -> Path:
    d = json.loads((OLD / "1d822f1_fft_numpy_intel-t1.json").read_text())
    d["versions"]["functions"] = functions
    path = tmp_path / "numpy.json"
    path.write_text(json.dumps(d))
    return path


def test_a_file_written_with_another_definition_of_a_function_it_uses_is_refused(tmp_path):
    # fftcost revision 1 (commit 445509d) gave other values than today's (up to 38% apart
    # in that commit's fft models): such a file must not predict silently differently
    path = _with_functions(tmp_path, {"fftcost": 1, "sopfr": 1, "lpf": 1, "twos": 1})
    with pytest.raises(ModelFormatError) as err:
        schema.load_model(path)
    msg = str(err.value)
    assert str(path) in msg and "fftcost" in msg and "retrain" in msg


def test_a_revision_of_a_function_the_file_does_not_use_does_not_matter(tmp_path):
    path = _with_functions(tmp_path, {"fftcost": 2, "sopfr": 7})
    assert schema.load_model(path)["complexity"] == {"fft_cost": "b*fftcost(n)"}


def test_versions_functions_must_be_an_object(tmp_path):
    with pytest.raises(ModelFormatError, match="versions.functions"):
        schema.load_model(_with_functions(tmp_path, [2]))


def test_a_written_model_records_the_revisions_it_was_made_with(tmp_path):
    d = schema.load_model(OLD / "1d822f1_fft_numpy_intel-t1.json")
    d["versions"] = schema.versions()
    assert d["versions"]["functions"] == schema.FUNCTION_REVISIONS
    path = schema.save_model(d, tmp_path / "numpy.json")
    assert schema.load_model(path)["versions"]["functions"]["fftcost"] == 2


def test_an_old_model_file_in_a_model_directory_serves_predict(tmp_path):
    import annpred

    hw = "cpu-amd-epyc-t1"
    dst = tmp_path / hw / "fft" / "numpy.json"
    dst.parent.mkdir(parents=True)
    shutil.copyfile(OLD / "ea44d24_fft_numpy_amd-t1.json", dst)
    with warnings.catch_warnings():  # another machine's model (no machine record): it may
        warnings.simplefilter("ignore")  # warn, once per process, so not asserted here
        pred = annpred.load_models(tmp_path).predict("fft", "numpy", {"n": 8, "b": 20},
                                                      hardware=hw)
    assert pred.seconds == pytest.approx(4.643917853874061e-06, rel=1e-12)  # ea44d24, as above


def test_a_schedule_model_of_another_encoding_is_refused(tmp_path):
    """Schedule models trained before ca01638 saw whole-row parallel tiles encoded as
    par=tiles and predicted the same schedule up to 18% differently, silently. A model now
    records the encoding's revision, and another one is refused naming the file."""
    from annpred.halide.space import ENCODING_REVISION
    from annpred.halide.store import train_fields

    assert train_fields({"train": {"encoding_revision": ENCODING_REVISION}}, "m.json")
    assert train_fields({"train": {}}, "m.json") == (False, False, 1.0)  # before the record
    for old in (ENCODING_REVISION - 1, "2", True):
        with pytest.raises(ModelFormatError, match=r"m\.json was trained on schedules "
                                                   r"encoded as in revision"):
            train_fields({"train": {"encoding_revision": old}}, "m.json")


def test_a_saved_schedule_model_records_the_encoding(tmp_path):
    import numpy as np

    from annpred.halide.space import ENCODING_REVISION
    from annpred.halide.store import save_schedule_model
    from annpred.model.estimator import AugmentedNNRegressor
    from annpred.halide.pipelines import get

    p = get("blur")
    names = p.feature_names()
    X = np.random.default_rng(0).uniform(1, 8, (24, len(names)))
    est = AugmentedNNRegressor(parameters=names, feature_names=names, max_epochs=5, n_init=1)
    est.fit(X, X.sum(axis=1) * 1e-3)
    root = tmp_path / "models"
    path = save_schedule_model(est, p, root / "halide" / "cpu-x-t2" / "blur.json")
    d = json.loads(path.read_text())
    assert d["train"]["encoding_revision"] == ENCODING_REVISION
