"""Shared input builders and product variants for the kernel catalog."""
from __future__ import annotations

import numpy as np


def nonzero_values(rng: np.random.Generator, count: int, dtype=np.float32) -> np.ndarray:
    """``count`` values with magnitude in [0.05, 1] and a random sign (never exactly 0)."""
    mag = rng.uniform(0.05, 1.0, count)
    return np.where(rng.random(count) < 0.5, -mag, mag).astype(dtype)


def random_sparse_dense(rng: np.random.Generator, shape, density: float,
                        dtype=np.float32) -> np.ndarray:
    """A dense array with exactly ``max(1, round(density * size))`` nonzeros at random
    positions."""
    size = int(np.prod(shape))
    nnz = min(size, max(1, int(round(float(density) * size))))
    if nnz == size:
        return nonzero_values(rng, size, dtype).reshape(shape)
    flat = np.zeros(size, dtype=dtype)
    if nnz <= size // 2:
        idx = rng.choice(size, nnz, replace=False)
    else:  # choose the zeros instead
        mask = np.ones(size, dtype=bool)
        mask[rng.choice(size, size - nnz, replace=False)] = False
        idx = np.flatnonzero(mask)
    flat[idx] = nonzero_values(rng, nnz, dtype)
    return flat.reshape(shape)


def density(a) -> float:
    """nnz / size of a numpy array or scipy sparse matrix; an all-zero operand counts as one
    nonzero, so the result is always > 0 (density parameters are log-sampled)."""
    size = int(np.prod(a.shape))
    if size == 0:
        return 1.0
    nnz = int(a.nnz) if hasattr(a, "nnz") else int(np.count_nonzero(a))
    return max(nnz, 1) / size


# -- products ``left @ right`` (matmul: A @ B, matvec: A @ x) -----------------------------------
def product_run(s):
    """Run a prepared product: a dict of numpy operands ``{left, right}`` or a pair."""
    if isinstance(s, dict):
        a, b = s.values()
        return a @ b
    return s[0] @ s[1]


def torch_product_prepare(left: str, right: str, device: str):
    from . import _torch as T

    def prepare(inputs, p):
        return T.tensor(inputs[left], device), T.tensor(inputs[right], device)
    return prepare


def sparse_product_prepare(left: str, right: str):
    """scipy.sparse: CSR(left) @ dense right."""
    def prepare(inputs, p):
        import scipy.sparse as sp

        return sp.csr_array(inputs[left]), np.ascontiguousarray(inputs[right])
    return prepare
