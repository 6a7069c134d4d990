"""User-facing errors. Every message names the thing that is wrong (file, row, column,
parameter); the CLI prints the message and exits non-zero."""


class AnnpredError(Exception):
    """Base class of the errors annpred reports to users."""


class DataError(AnnpredError, ValueError):
    """A profiling CSV (or a DataFrame) is unusable: missing column, bad cell, too few rows."""


class ExpressionError(AnnpredError, ValueError):
    """A complexity expression is malformed, names unknown symbols or uses forbidden syntax."""


class ModelFormatError(AnnpredError, ValueError):
    """A model file is malformed, of an unknown format version, or has weights of wrong shape."""


class UnknownKernelError(AnnpredError, KeyError):
    """A kernel, variant or model is not known; the message lists the known ones."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ParameterError(AnnpredError, ValueError):
    """A kernel parameter is missing, unknown, or outside its domain."""


class AnnpredWarning(UserWarning):
    """Something was skipped or is doubtful (a broken model file among good ones); the CLI
    prints it as one ``annpred: warning: ...`` line."""


class FewRowsWarning(AnnpredWarning):
    """A network was fitted on fewer than two rows per trainable parameter and can memorise
    them. Studies and guided sampling fit small training sets on purpose and silence it."""


class MachineMismatchWarning(AnnpredWarning):
    """A model was measured on another machine (or one it does not describe) and has not
    been adapted to this one; see ``annpred calibrate``."""
