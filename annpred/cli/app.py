"""The ``annpred`` command line: builds the parser from one module per command."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from annpred.errors import AnnpredError

# Each module adds its subcommand(s) with ``register(subparsers)``; each must be cheap to
# import (no torch, no halide at module level).
COMMANDS = ("annpred.cli.kernels", "annpred.cli.profile", "annpred.cli.train",
            "annpred.cli.predict", "annpred.cli.choose", "annpred.cli.export",
            "annpred.cli.evaluate", "annpred.cli.quickstart", "annpred.halide.cli")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="annpred", description="Predict kernel runtimes with tiny "
                                "complexity-augmented neural networks.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # name=value pairs may come after options (argparse stops positionals at an option)
    if extra and isinstance(getattr(args, "params", None), list):
        stray = [e for e in extra if e.startswith("-") or "=" not in e]
        if not stray:
            args.params = args.params + extra
            extra = []
    if extra:
        parser.error("unrecognized arguments: " + " ".join(extra))
    try:
        return int(args.func(args) or 0)
    except AnnpredError as exc:
        print(f"annpred: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("annpred: interrupted; rows written so far are kept (rerun to resume)",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # pragma: no cover
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
