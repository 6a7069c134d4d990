"""The ``annpred`` command line: one module per command (``app`` builds the parser)."""
from annpred.cli.app import main

__all__ = ["main"]
