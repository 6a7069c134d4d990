"""Where to measure: samplers of parameter points for a kernel."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ParameterError
from .kernel import Kernel


def random_points(kernel: Kernel, n: int, seed: int = 0, variant: str | None = None,
                  max_tries: int = 200) -> pd.DataFrame:
    """``n`` points sampled per parameter's sampling rule, respecting the kernel's (and the
    variant's) constraints, by rejection. Deterministic in ``seed``."""
    if n < 1:
        raise ParameterError(f"number of samples must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    v = kernel.variant(variant) if variant else None
    rows: list[dict] = []
    batch = max(2 * n, 64)
    for _ in range(max_tries):
        cols = {p.name: p.sample(rng, batch) for p in kernel.params}
        for i in range(batch):
            point = {k: (int(c[i]) if kernel.param(k).kind == "int" else float(c[i]))
                     for k, c in cols.items()}
            if kernel.valid(point) and (v is None or v.supports_point(point)):
                rows.append(point)
                if len(rows) == n:
                    return pd.DataFrame(rows, columns=kernel.param_names)
    raise ParameterError(f"kernel {kernel.name}: could not sample {n} valid points; "
                         "the constraint rejects almost everything")


def pr_points(kernel: Kernel, n: int, seed: int = 0, **kw):
    """Performance representatives: sweeps, step detection, one point per plateau. It
    measures while sampling, so it needs ``measure=``; see :mod:`annpred.representatives`
    (``annpred profile KERNEL --sampler pr`` runs it)."""
    from .representatives import pr_points as _pr

    return _pr(kernel, n, seed=seed, **kw)


SAMPLERS = {"random": random_points, "pr": pr_points}


def sample(kernel: Kernel, n: int, sampler: str = "random", seed: int = 0, **kw) -> pd.DataFrame:
    if sampler not in SAMPLERS:
        raise ParameterError(f"unknown sampler {sampler!r}; samplers: {', '.join(SAMPLERS)}")
    return SAMPLERS[sampler](kernel, n, seed=seed, **kw)
