"""Memory-bound complexity expressions (annpred.accel.stalls): parseable by the whitelist,
equal to the fold expression when every stream fits its window, and close to the exact
cycles where a stream overflows (ResNet-18's last stage on tpu-v1)."""
import numpy as np
import pytest

from annpred.accel import description as D
from annpred.accel.evaluate import estimate
from annpred.accel.layers import make
from annpred.accel.mapping import cycles_expression
from annpred.accel.stalls import stall_expressions
from annpred.spec import expr as E

OUT = "(floor((n-k)/s)+1)"


def _eval(acc, layer):
    folds = cycles_expression(acc, f"{OUT}**2", "k**2*c", "f")
    ex = stall_expressions(acc, f"{OUT}**2", "k**2*c", "f", folds)
    v = {"n": np.array([layer.H]), "k": np.array([layer.R]), "c": np.array([layer.C]),
         "f": np.array([layer.M]), "s": np.array([layer.stride])}
    return (float(E.evaluate(folds, v)[0]), float(E.evaluate(ex["user"], v)[0]),
            float(E.evaluate(ex["prefetch"], v)[0]))


def test_fitting_streams_add_no_stall():
    acc = D.get("tpu-v1")
    layer = make("conv2d", dict(H=58, W=58, R=3, S=3, C=64, M=64, stride=1))
    folds, user, prefetch = _eval(acc, layer)
    assert user == folds and prefetch == 1
    assert estimate(acc, layer, "user")["cycles"] == folds - 1   # SCALE-Sim's total


def test_overflowing_filter_stream_is_estimated():
    acc = D.get("tpu-v1")   # 9x9x512 -> 512: 2.36 M filter words, a 2.1 M-word window
    layer = make("conv2d", dict(H=9, W=9, R=3, S=3, C=512, M=512, stride=1))
    folds, user, prefetch = _eval(acc, layer)
    exact = estimate(acc, layer, "user")["cycles"]
    assert prefetch == 1 + 32769                 # one prefetch of half the buffer at 64 w/c
    assert abs(folds - exact) / exact > 0.3      # ideal bandwidth misses the stall
    assert user == exact + 1     # one prefetch, needed at fold 32: the estimate is exact


@pytest.mark.parametrize("name", ["systolic32", "eyeriss", "gemmini", "vector64"])
def test_every_shipped_dataflow_gives_positive_features(name):
    acc = D.get(name)
    layer = make("conv2d", dict(H=30, W=30, R=3, S=3, C=32, M=32, stride=1))
    folds, user, prefetch = _eval(acc, layer)
    assert user >= folds > 0 and prefetch >= 1
