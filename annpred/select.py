"""Compatibility names for the runtime decision API (documented in the README):
``annpred.select.Feedback``, ``set_default``, ``set_policy``, ``set_margin``,
``calibrate_transfer``, ``clear_caches``, ``set_unsure``. The code lives in :mod:`annpred.runtime`."""
from annpred.runtime.caches import clear as clear_caches
from annpred.runtime.choice import (POLICIES, Candidate, Choice, NoCandidatesError, set_default,
                                    set_margin, set_policy, set_unsure)
from annpred.runtime.choose import choose
from annpred.runtime.dispatch import dispatch
from annpred.runtime.feedback import Feedback, FeedbackRecord
from annpred.runtime.transfer import TRANSFER, TransferModel, calibrate_transfer

__all__ = ["POLICIES", "TRANSFER", "Candidate", "Choice", "Feedback", "FeedbackRecord",
           "NoCandidatesError", "TransferModel", "calibrate_transfer", "choose", "clear_caches",
           "dispatch", "set_default", "set_margin", "set_policy", "set_unsure"]
