"""Where to measure: samplers of parameter points for a kernel."""
from __future__ import annotations

import pandas as pd

from annpred.errors import ParameterError
from annpred.spec.kernel import Kernel


def random_points(kernel: Kernel, n: int, seed: int = 0, variant: str | None = None,
                  max_tries: int = 200) -> pd.DataFrame:
    """``n`` random points (:meth:`Kernel.sample_points`) as a DataFrame in spec order."""
    return pd.DataFrame(kernel.sample_points(n, seed, variant, max_tries),
                        columns=kernel.param_names)


def pr_points(kernel: Kernel, n: int, seed: int = 0, **kw):
    """Performance representatives: sweeps, step detection, one point per plateau. It
    measures while sampling, so it needs ``measure=``; see :mod:`annpred.measure.pr`
    (``annpred profile KERNEL --sampler pr`` runs it)."""
    from annpred.measure.pr import pr_points as _pr

    return _pr(kernel, n, seed=seed, **kw)


SAMPLERS = {"random": random_points, "pr": pr_points}


def sample(kernel: Kernel, n: int, sampler: str = "random", seed: int = 0, **kw) -> pd.DataFrame:
    if sampler not in SAMPLERS:
        raise ParameterError(f"unknown sampler {sampler!r}; samplers: {', '.join(SAMPLERS)}")
    return SAMPLERS[sampler](kernel, n, seed=seed, **kw)
