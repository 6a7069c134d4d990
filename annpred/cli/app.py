"""The ``annpred`` command line: builds the parser from one module per command."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import Sequence

from annpred.errors import AnnpredError, AnnpredWarning

# set in the environment of an annpred child process whose parent reports the interrupt
QUIET_INTERRUPT = "ANNPRED_QUIET_INTERRUPT"

# Each module adds its subcommand(s) with ``register(subparsers)``; each must be cheap to
# import (no torch, no halide at module level).
COMMANDS = ("annpred.cli.kernels", "annpred.cli.profile", "annpred.cli.train",
            "annpred.cli.predict", "annpred.cli.choose", "annpred.cli.export",
            "annpred.cli.evaluate", "annpred.cli.quickstart", "annpred.cli.calibrate",
            "annpred.cli.convert", "annpred.cli.tune_space", "annpred.halide.cli",
            "annpred.accel.cli")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="annpred", description="Predict kernel runtimes with tiny "
                                "complexity-augmented neural networks.")
    from annpred.data.rows import version

    p.add_argument("--version", action="version", version=f"annpred {version()}",
                   help="print the installed version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return p


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """annpred's own warnings (a skipped model file, a machine mismatch) as one
    ``annpred: warning:`` line; others as Python prints them."""
    if issubclass(category, AnnpredWarning):
        print(f"annpred: warning: {message}", file=file or sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def _command_parser(parser: argparse.ArgumentParser, command: str | None):
    """The subparser of ``command`` (its usage is what a user needs on an error)."""
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction) and command in a.choices:
            return a.choices[command]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    try:  # the command modules' imports take a moment: Ctrl-C then is no traceback either
        parser = build_parser()
    except KeyboardInterrupt:
        print("annpred: interrupted", file=sys.stderr)
        return 130
    args, extra = parser.parse_known_args(argv)
    # name=value pairs may come after options (argparse stops positionals at an option)
    if extra and isinstance(getattr(args, "params", None), list):
        stray = [e for e in extra if e.startswith("-") or "=" not in e]
        if not stray:
            args.params = args.params + extra
            extra = []
    sub = _command_parser(parser, getattr(args, "command", None))
    if extra:
        sub.error("unrecognized arguments: " + " ".join(extra))
    bad = [p for p in getattr(args, "params", None) or [] if "=" not in p]
    if bad and isinstance(args.params, list):
        sub.error(f"expected name=value, got {bad[0]!r}")
    try:
        return int(args.func(args) or 0)
    except AnnpredError as exc:
        print(f"annpred: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused (full disk, permissions, /proc, ...)
        if isinstance(exc, BrokenPipeError):
            return 0
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"annpred: error: {_one_line(f'{where}{exc.strerror or exc}')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if not os.environ.get(QUIET_INTERRUPT):  # a child process: its parent says it
            note = getattr(args, "interrupted", None)
            print("annpred: interrupted" + (f"; {note.format(**vars(args))}" if note else ""),
                  file=sys.stderr)
        return 130
    except BrokenPipeError:  # pragma: no cover
        return 0


def run_script(main, *args, interrupted: str = "rerun the same command to resume") -> int:
    """``main(*args)`` of a study script under ``experiments/``: Ctrl-C ends it with one line
    (``interrupted; <interrupted>``) and exit status 130, not a traceback."""
    try:
        return int(main(*args) or 0)
    except KeyboardInterrupt:
        print(f"interrupted; {interrupted}", file=sys.stderr)
        return 130


MAX_ERROR_CHARS = 1000  # an error line repeats user text (a path, a value): bounded


def _one_line(exc) -> str:
    """The error as one line of at most :data:`MAX_ERROR_CHARS` characters: a longer one
    keeps its start (what was refused) and its end (what to do)."""
    text = " ".join(str(exc).split("\n"))
    if len(text) <= MAX_ERROR_CHARS:
        return text
    head, tail = MAX_ERROR_CHARS * 7 // 10, MAX_ERROR_CHARS // 4
    return (f"{text[:head]} ... ({len(text) - head - tail:,} characters left out) ... "
            f"{text[-tail:]}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
