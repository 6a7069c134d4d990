"""Retraining from the calls :func:`annpred.dispatch` recorded (:class:`annpred.runtime.
feedback.Feedback`): the runtime side's one bridge to training (ARCHITECTURE.md, rule 1)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

from annpred.data import profiles as _data
from annpred.errors import DataError
from annpred.model.trainer import train_frame


def refit(feedback, out, base_csvs: Sequence = (), **train_kw) -> list:
    """Retrain the combinations seen in ``feedback`` (an :class:`annpred.runtime.feedback.
    Feedback`) from ``base_csvs`` plus the recorded calls, into model directory ``out``."""
    seen = {(r.kernel, r.variant, r.hardware) for r in feedback.records}
    if not seen:
        raise DataError("no dispatched calls recorded; nothing to refit")
    with tempfile.TemporaryDirectory() as tmp:
        fb = feedback.to_csv(Path(tmp) / "feedback")
        paths = ([str(p) for p in sorted(Path(fb).glob("*.csv"))] if Path(fb).is_dir()
                 else [str(fb)])
        df = _data.load_profiles([*map(str, base_csvs), *paths])
        key = list(zip(df["kernel"], df["variant"], df["hardware"]))
        df = df[[k in seen for k in key]]
        counts = df.groupby(["kernel", "variant", "hardware"]).size()
        keep = {k for k, n in counts.items() if n >= _data.MIN_ROWS}
        df = df[[k in keep for k in zip(df["kernel"], df["variant"], df["hardware"])]]
        if df.empty:
            raise DataError(f"every combination has fewer than {_data.MIN_ROWS} rows; "
                            "record more calls or pass the original data as base_csvs")
        return train_frame(df, out, **train_kw)
