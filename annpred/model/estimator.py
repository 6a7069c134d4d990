"""``AugmentedNNRegressor``: scikit-learn style estimator for runtimes.

Inputs are the kernel parameters plus complexity features computed from sympy expressions
over those parameters; the target is runtime in seconds (fitted as log runtime). Parameters
live in ``__init__``; learned attributes end in ``_``. Training imports torch; ``predict``
runs in numpy only."""
from __future__ import annotations

import hashlib
import time
import warnings

import numpy as np

from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import column_or_1d, validate_data

from annpred.errors import DataError, FewRowsWarning
from annpred.model import hyper, modeldict, network
from annpred.model.candidate import Candidates, refit_all, resume_candidate
from annpred.model.features import AUTO, feature_matrix, normalise_complexity
from annpred.model.interval import NoIntervalWarning, no_interval_message
from annpred.spec import expr as _expr


LOSS_AUTO = ("huber", "mse", "mape")  # loss="auto": the first screens, the final fit tries all
REFIT_ITER = 80  # L-BFGS iterations on all training rows after the choice (dev splits chose)
N_INIT = 4  # random starts per final fit (2 -> 4: dev-split NN+C mean 4.63 -> 4.47%)
CHOICE_ROWS = 2000  # above this many training rows the choices are made on a subset of it


class AugmentedNNRegressor(RegressorMixin, BaseEstimator):
    """Tiny MLP (< 75 trainable parameters) on parameters + complexity features.

    Parameters
    ----------
    complexity : str | dict[str, str] | None
        Expression(s) over the parameter (column) names, e.g. ``"m*n*k"``. ``None`` gives
        the plain network without complexity (the ``NN`` baseline). ``"auto"`` derives
        candidate expressions from the columns and known structure and keeps those that
        lower the validation error (:mod:`annpred.model.autocomplexity`); the chosen ones
        are in ``complexity_``, the search in ``auto_log_``.
    base_complexity : dict[str, str] | None
        With ``complexity="auto"``: expressions to start from (the catalog's, when known).
    problem_size : sequence of float | None
        With ``complexity="auto"``: the problem size of a GPU tuning space (x, y, z), for
        grid and padding candidates.
    constants : dict[str, float] | None
        With ``complexity="auto"``: parameters with one value in the whole space (e.g. a
        convolution's ``filter_width``), for stencil-halo candidates.
    parameters : list[str] | None
        Columns of X used as inputs (default: all columns).
    coverage : float
        Nominal coverage of the prediction interval (default 0.9): split-conformal
        quantiles of the log-runtime residuals on the validation split carved from the
        training data, stored in the model file (``interval``) and used by
        :meth:`predict_interval`, ``choose`` and the C export.
    feature_names : list[str] | None
        Names of the columns of a numpy ``X`` (a DataFrame brings its own), so that
        ``complexity="m*n*k"`` works with arrays; default: after a DataFrame fit the fitted
        columns in their order (``feature_names_in_``), else ``parameters``, else ``x0, x1,
        ...``.
    hidden : int | tuple[int, ...] | None
        Hidden layer sizes (an int ``h`` is one layer, ``(h,)``); default: the widest single
        layer under ``max_params`` (fewer than 75 trainable parameters, the most a model file
        may hold).
    seed : int | None
        Seed of the validation split and the random starts (0 to 2**32 - 1); the same seed
        and data give the same model. ``None`` draws one from numpy's global random state,
        as scikit-learn does; the seed used is in ``seed_`` and the model file.
    val_fraction : float
        Share of the training rows held out as the validation split (default 0.2), in
        [0, 0.5]: above a half the network would be fitted on fewer rows than choose its
        stopping point, features and loss; 0 = no split (no interval, no refit pass).
    input_transform : "auto" | "log" | "identity" | list of "log" / "identity"
        Per-input transform before standardising: ``auto`` (default) takes the log of
        inputs that are positive on every row; a list gives one per network input
        (parameters, then complexity features; not with ``complexity="auto"``).
    optimizer : "lbfgs" | "adam"
        Full-batch L-BFGS (default) or Adam.
    loss : "huber" | "mse" | "l1" | "mape" | "auto"
        Loss on the log runtime; ``huber`` (default) is squared below a relative error of
        about ``huber_delta`` (in log units; 0.1 ~ 10%) and absolute above it, so a few
        spoiled measurements do not drag the fit. ``mape`` is the relative error of the
        runtime itself, ``|exp(log error) - 1|``, the metric models are judged by: where
        the data leave much unexplained it predicts below the median (an over-prediction
        costs without bound, an under-prediction at most 100%); it starts from the ``mse``
        fit, as the absolute value alone stalls L-BFGS early. ``auto`` fits the final
        network with ``huber``, ``mse`` and ``mape`` and keeps the lowest validation MAPE
        (spaces with real jumps of several times, such as GPU tuning spaces, are fitted
        better by squared error, which does not treat the jumps as outliers;
        ``complexity="auto"`` screens with ``huber``). The loss used is in ``loss_``.
    select_complexity : bool
        With several complexity expressions, also fit the network on the first (main) one
        alone and keep whichever has the lower MAPE on the validation split (fewer inputs
        leave more hidden units; some catalog expressions do not describe every variant).
        The model keeps only the features it uses. Default True.
    max_epochs, patience : int | None
        Iterations (L-BFGS) or epochs (Adam) and early-stopping patience; ``None`` = the
        optimizer's default (L-BFGS 500/50, Adam 3000/300).
    refit_iter : int
        Once the validation split has chosen the features, loss, initialisation and stopping
        point, the chosen network goes on for this many L-BFGS iterations on *all* training
        rows, validation rows included (default 80; 0 = off, as with Adam), so the rows
        that chose are not lost to the fit. ``val_mape_`` and the interval are those of the
        network before this pass (its validation rows were then held out); the interval is
        therefore a little conservative.
    n_init : int
        Random starts per final fit (default 4), the lowest validation loss kept.
    choice_rows : int | None
        With more training rows than this (default 2,000; after the validation split) and
        choices to make (``complexity="auto"``, ``loss="auto"``, several complexity
        expressions), the choices are made by fits on this many training rows drawn at
        random (seeded), scored on the whole validation split; the chosen network
        (features, loss and random start) is then fitted further on every training row,
        validated on the same split. This keeps training on large files to seconds (the
        choices cost as on ``choice_rows`` rows). ``choice_rows_`` is the subset's size,
        None when every row chose. None: choose on every row.
    Fitted ``n_val_``: validation rows (a fifth from 20 rows on; with fewer there is no
    split, and ``val_mape_`` is the error on the training rows).

    Every parameter is checked when ``fit`` starts, before any training: a bad value raises
    :class:`~annpred.errors.ParameterError` (a ``ValueError``) naming it.
    """

    def __init__(self, complexity=None, parameters=None, hidden=None, seed=0,
                 activation="tanh", skip=True, max_epochs=None, patience=None, lr=0.02,
                 weight_decay=0.0, val_fraction=0.2, n_init=N_INIT, input_transform="auto",
                 max_params=network.MAX_PARAMS, steps=None, optimizer="lbfgs", loss="huber",
                 huber_delta=0.1, select_complexity=True, feature_names=None, coverage=0.9,
                 base_complexity=None, problem_size=None, constants=None, refit_iter=REFIT_ITER,
                 choice_rows=CHOICE_ROWS):
        self.complexity = complexity
        self.choice_rows = choice_rows
        self.refit_iter = refit_iter
        self.constants = constants
        self.coverage = coverage
        self.base_complexity = base_complexity
        self.problem_size = problem_size
        self.feature_names = feature_names
        self.steps = steps
        self.parameters = parameters
        self.hidden = hidden
        self.seed = seed
        self.activation = activation
        self.skip = skip
        self.max_epochs = max_epochs
        self.patience = patience
        self.lr = lr
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.n_init = n_init
        self.input_transform = input_transform
        self.max_params = max_params
        self.optimizer = optimizer
        self.loss = loss
        self.huber_delta = huber_delta
        self.select_complexity = select_complexity

    # -- scikit-learn conventions -------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True  # runtimes: fitted as log runtime
        return tags

    def _columns(self, X, reset: bool) -> dict[str, np.ndarray]:
        """Validate ``X`` (DataFrame or array; finite numbers) and return its columns by name.

        A DataFrame is cut to ``parameters`` first (it may carry other columns, e.g. the
        kernel name); array columns are named by ``feature_names``, else (after a DataFrame
        fit) the fitted columns in order, else ``parameters``, else ``x0, x1, ...``."""
        if hasattr(X, "columns"):
            if self.parameters is not None:
                missing = [c for c in self.parameters if c not in X.columns]
                if missing:
                    raise DataError(f"missing feature column(s): {', '.join(missing)}")
                X = X[list(self.parameters)]
            names = [str(c) for c in X.columns]
        else:
            names = None
        try:
            arr = validate_data(self, X, reset=reset, dtype=np.float64)
        except ValueError as exc:  # text columns, NaN, a wrong number of columns, ...
            raise (hyper.text_columns(X, exc) or hyper.data_error(self, exc)) from None
        if names is None:
            given = self.feature_names
            if given is None and not reset:
                given = getattr(self, "feature_names_in_", None)
            given = given if given is not None else self.parameters
            names = list(given) if given is not None else \
                [f"x{i}" for i in range(arr.shape[1])]
            if len(names) != arr.shape[1]:
                raise DataError(f"X has {arr.shape[1]} columns but {len(names)} names were "
                                "given (feature_names / parameters)")
        return {n: arr[:, j] for j, n in enumerate(names)}

    # -- features ---------------------------------------------------------------------
    def features_matrix(self, X) -> np.ndarray:
        """The network's raw input matrix (parameters, then complexity features)."""
        self._check_fitted()
        return feature_matrix(self._columns(X, reset=False), self.parameters_, self.complexity_)

    # -- fit / predict ----------------------------------------------------------------
    def fit(self, X, y):
        """Fit the network to runtimes ``y`` (seconds, > 0) at the rows of ``X``.

        ``X`` is a DataFrame of parameter columns (cut to ``parameters`` when given) or a
        numpy array (columns named by ``feature_names``/``parameters``); at least 8 rows.
        Every parameter is checked first, then the data, before torch is imported.
        Warns :class:`~annpred.errors.FewRowsWarning` with fewer than 2 rows per trainable
        parameter, and :class:`~annpred.model.interval.NoIntervalWarning` (a subclass) when
        the validation split is too small for a ``coverage`` interval. Returns ``self``."""
        t0 = time.perf_counter()
        hp = hyper.check_params(self)
        df = self._columns(X, reset=True)
        params = list(self.parameters or df)
        auto = isinstance(self.complexity, str) and self.complexity == AUTO
        complexity = normalise_complexity(self.base_complexity if auto else self.complexity)
        for name, text in complexity.items():
            _expr.parse(text, params)
            if name in params:
                raise DataError(f"complexity name {name!r} collides with a parameter column")
        steps = {str(k): int(v) for k, v in (self.steps or {}).items()}
        if steps:  # step-aware features: x -> ceiling(x/s)*s in every complexity expression
            from annpred.model.steps import step_complexity

            unknown = [k for k in steps if k not in params]
            if unknown:
                raise DataError(f"steps name unknown parameter(s) {', '.join(unknown)}")
            complexity = step_complexity(complexity, steps, params)
        hyper.check_layout(self, hp, params, len(complexity))
        y = column_or_1d(y, warn=True).astype(float)
        n_rows = len(next(iter(df.values()))) if df else 0
        if len(y) != n_rows:
            raise DataError(f"X has {n_rows} rows but y has {len(y)}")
        if not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise DataError("runtimes must be finite and positive")
        if len(y) < 8:
            raise DataError(f"{len(y)} sample(s) are too few to train a model (need at least 8)")
        self.seed_ = hp.seed
        rng = np.random.default_rng(self.seed_)
        order = rng.permutation(len(y))
        n_val = int(round(len(y) * self.val_fraction)) if len(y) >= 20 else 0
        val_idx, tr_idx = order[:n_val], order[n_val:]
        self.auto_log_ = None
        base = complexity
        fits = Candidates(self, df, y, params, val_idx)
        losses = LOSS_AUTO if self.loss == AUTO and n_val else \
            (LOSS_AUTO[:1] if self.loss == AUTO else (self.loss,))
        several = auto or len(losses) > 1 or (self.select_complexity and len(complexity) > 1)
        choice_tr = self._choice_subset(tr_idx, n_val, several)
        if auto:
            complexity = self._auto_complexity(fits, df, y, params, complexity, choice_tr,
                                               val_idx)
        candidates = [complexity]
        if self.select_complexity and len(complexity) > 1 and n_val:
            first = next(iter(complexity))
            candidates.append({first: complexity[first]})
            # the search screened with short single-start fits: the full fit of its starting
            # set competes too (the margin the search kept a feature by can be noise)
            if auto and base and base != complexity and base not in candidates:
                candidates.append(dict(base))
        best = None
        for comp in candidates:
            for loss in losses:
                fitted = fits.fit(comp, choice_tr, loss=loss)
                if best is None or fitted["val_mape_"] < best["val_mape_"]:
                    best = fitted
        self.choice_rows_ = None
        if len(choice_tr) < len(tr_idx):  # chosen on a subset: the choice on every row
            best = resume_candidate(self, df, y, params, best, tr_idx, val_idx)
            self.choice_rows_ = len(choice_tr)
        if self.refit_iter and n_val and self.optimizer == "lbfgs":
            best = refit_all(self, df, y, params, best)
        for k, v in best.items():
            setattr(self, k, v)
        self.parameters_ = params
        self.steps_ = steps
        self.complexity_candidates_ = [list(c) for c in candidates]
        self.train_range_ = {c: [float(np.min(df[c])), float(np.max(df[c]))] for c in params}
        self.n_samples_ = len(y)
        self.n_val_ = int(n_val)
        self.train_time_s_ = time.perf_counter() - t0
        if self.n_samples_ < 2 * self.n_params_:
            warnings.warn(f"{self.n_samples_} training rows for {self.n_params_} trainable "
                          "parameters (fewer than 2 rows per parameter): the network can "
                          "memorise them; measure more points", FewRowsWarning, stacklevel=2)
        if n_val and self.interval_ is None:
            warnings.warn(no_interval_message(n_val, len(y), self.coverage, self.val_fraction),
                          NoIntervalWarning, stacklevel=2)
        Xf = feature_matrix(df, params, self.complexity_)
        self.data_sha256_ = hashlib.sha256(
            np.ascontiguousarray(np.column_stack([Xf, y])).tobytes()).hexdigest()
        return self

    def _choice_subset(self, tr_idx, n_val: int, several: bool) -> np.ndarray:
        """The training rows the choices are made on: ``tr_idx``, or with more than
        ``choice_rows`` of them and several choices to make, that many drawn at random."""
        k = self.choice_rows
        if not (several and n_val and k is not None and len(tr_idx) > k):
            return tr_idx
        pick = np.random.default_rng([self.seed_, 1]).permutation(len(tr_idx))[:k]
        return tr_idx[np.sort(pick)]

    def _auto_complexity(self, fits, df, y, params, base, tr_idx, val_idx) -> dict:
        """``complexity="auto"``: candidates from the columns and structure, kept greedily
        when a short network fit on the training rows validates better (validation rows
        carved from the training data)."""
        from annpred.model import autocomplexity as _auto

        if not len(val_idx):  # too few rows to validate a choice: keep the base
            self.auto_log_ = [{"tried": "(too few rows to select)", "kept": True}]
            return dict(base)
        cands = _auto.candidates(df, params, self.problem_size or (), base,
                                 constants=self.constants)

        def score(comp):
            return fits.fit(comp, tr_idx, n_init=1, loss=self._loss0())["val_mape_"]

        chosen, log = _auto.select(df, params, y, tr_idx, val_idx, cands, score, base=base)
        self.auto_log_ = log
        self.auto_n_candidates_ = len(cands)
        return chosen

    def _loss0(self) -> str:
        return LOSS_AUTO[0] if self.loss == AUTO else self.loss

    def _check_fitted(self):
        if not hasattr(self, "layers_"):
            raise NotFittedError("this AugmentedNNRegressor is not fitted yet; call fit first")

    def predict(self, X) -> np.ndarray:
        """Predicted runtimes in seconds, one per row of ``X`` (a DataFrame with the fitted
        parameter columns, or an array with them in the fitted order). Numpy only.
        :class:`~annpred.errors.DataError` where a row gives no finite prediction (a
        complexity expression undefined there)."""
        Xf = self.features_matrix(X)
        with np.errstate(all="ignore"):
            out = network.predict_seconds(Xf, self._compiled)
        bad = np.flatnonzero(~np.isfinite(out))  # a complexity expression undefined there
        if len(bad):
            at = ", ".join(f"{p}={v:g}" for p, v in zip(self.parameters_, Xf[bad[0]]))
            raise DataError(f"no finite prediction for {len(bad)} of {len(out)} rows; first: "
                            f"row {bad[0]} ({at})")
        return out

    def predict_interval(self, X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(seconds, low, high)``: the prediction and its ``coverage`` interval (``interval_``,
        split conformal on the validation rows). The bounds are NaN when the fit had fewer
        than ``min_residuals(coverage)`` validation rows (19 at coverage 0.9, 39 at 0.95):
        always below 20 training rows (no split) or at ``val_fraction=0``, and at the
        defaults (0.9, 0.2) below 93 training rows (``fit`` then warns
        :class:`~annpred.model.interval.NoIntervalWarning`)."""
        s = self.predict(X)
        iv = getattr(self, "interval_", None)
        if not iv:
            return s, np.full_like(s, np.nan), np.full_like(s, np.nan)
        return s, s * np.exp(iv["lo"]), s * np.exp(iv["hi"])

    def in_range(self, X) -> np.ndarray:
        """Per row: whether every parameter lies inside the training range."""
        self._check_fitted()
        df = self._columns(X, reset=False)
        ok = np.ones(len(next(iter(df.values()))), dtype=bool)
        for c, (lo, hi) in self.train_range_.items():
            v = np.asarray(df[c], dtype=float)
            ok &= (v >= lo) & (v <= hi)
        return ok

    # -- serialisation ----------------------------------------------------------------
    def to_dict(self, kernel="custom", variant="custom", hardware="unknown",
                extra_train: dict | None = None) -> dict:
        """The fitted model as a model-file dict (format ``annpred-model/1``): parameters,
        features, complexity, weights, scalers, interval and a ``train`` record (rows,
        validation MAPE, seed used, loss, data hash, ``extra_train``). JSON-ready.

        To make it a model that ``annpred.load_models`` / ``choose`` read, save it as
        ``<root>/<hardware>/<kernel>/<variant>.json`` with
        :func:`annpred.model.schema.save_model` (which validates it; models need fewer than
        75 trainable parameters and safe names), e.g.
        ``save_model(est.to_dict("matmul", "numpy", hw), root / hw / "matmul" / "numpy.json")``."""
        self._check_fitted()
        return modeldict.to_dict(self, kernel, variant, hardware, extra_train)

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentedNNRegressor":
        """A fitted estimator from a model dict (:func:`annpred.model.schema.load_model`);
        it predicts in numpy, without torch. The dict is validated first
        (:class:`~annpred.errors.ModelFormatError`).

        Constructor parameters the file records are restored: ``complexity`` (after any
        step rewrite; ``steps`` stays None so a refit does not apply it twice),
        ``parameters``, ``hidden``, ``seed``, ``activation``, ``skip``, ``loss`` (the one
        used, so ``"auto"`` comes back as its choice), ``coverage`` (with an interval) and
        ``refit_iter`` (when the refit pass ran). The file does not record the others
        (``n_init``, ``optimizer``, ``max_epochs``, ``val_fraction``, ``input_transform``,
        ...): they keep their defaults, so a ``clone(...).fit`` may differ from the
        original fit."""
        return modeldict.from_dict(cls, d)
