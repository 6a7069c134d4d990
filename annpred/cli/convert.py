"""``annpred convert``: a Kernel Tuner cache file as a profiling CSV."""
from __future__ import annotations

from annpred.cli.common import add_space_options


def cmd_convert(args) -> int:
    import csv
    import io

    from annpred.data import kerneltuner as kt
    from annpred.data.rows import SPACE_COLUMNS, columns_for, row_values, version
    from annpred.errors import ParameterError
    from annpred.files import atomic_write_text
    from annpred.validate import safe_name

    if not kt.is_cache_file(args.cache):
        raise ParameterError(f"{args.cache}: expected a Kernel Tuner cache file or T4 "
                             "results file (.json or .json.gz)")
    from annpred.cli.common import output_file

    output_file(args.out, "-o/--out", [args.cache])  # before reading a large file
    for what, value in (("--kernel", args.kernel), ("--hardware", args.hardware)):
        if value is not None:
            safe_name(value, what, ParameterError)
    size, const = kt.space_arguments(args.problem_size, args.constants)
    # raises DataError before anything is written
    c = kt.read_cache(args.cache, kernel=args.kernel, hardware=args.hardware)
    # no load average or machine of ours; the space's problem size and constants, so that
    # the CSV trains as the cache does
    cols = columns_for(c.params, optional=False) + SPACE_COLUMNS
    if size is None:
        size = kt.format_problem_size(c.problem_size)
    if const is None:
        const = kt.format_constants(c.constants)
    space = {"_problem_size": size, "_constants": const}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    ver = version()
    for i, r in enumerate(c.rows):
        row = row_values(c.kernel, c.variant, c.hardware, {p: _fmt(r[p]) for p in c.params},
                         c.params, runtime_s=r["runtime_s"], runtime_cv=r["runtime_cv"],
                         repeats=r["repeats"], runtime_min_s=r["runtime_min_s"],
                         sampler="kerneltuner", point_id=i, version=ver)
        row.update(space)
        w.writerow([row[col] for col in cols])
    atomic_write_text(args.out, buf.getvalue())
    failed = (f"; skipped {c.n_failed} failed configuration(s) (" + ", ".join(
        f"{n} {k}" for k, n in sorted(c.failures.items())) + ")") if c.n_failed else ""
    print(f"wrote {c.n_rows} configurations of {c.kernel}/{c.variant} on {c.hardware} "
          f"to {args.out}{failed}")
    return 0


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def register(sub) -> None:
    s = sub.add_parser("convert", help="write a Kernel Tuner cache file as a profiling CSV",
                       description="Read a Kernel Tuner cache file, or a T4 results file "
                       "(Kernel Tuner's store_output_file, the FAIR Benchmark Hub), .json or "
                       ".json.gz, and write one profiling-CSV row per configuration: tuning "
                       "parameters as columns, time (ms) as runtime_s (s), the spread of "
                       "times as runtime_cv; failed configurations are skipped and counted.")
    s.add_argument("cache", help="Kernel Tuner cache file or T4 results file (.json or "
                   ".json.gz)")
    s.add_argument("-o", "--out", required=True, help="output CSV")
    s.add_argument("--kernel", help="kernel name (default: the file's kernel_name and "
                   "problem size; a T4 file's name)")
    s.add_argument("--hardware", help="hardware id (default: from the file's device_name; "
                   "where it is empty, and for T4 files, from the file name)")
    add_space_options(s)
    s.set_defaults(func=cmd_convert)
