"""``annpred convert``: a Kernel Tuner cache file as a profiling CSV."""
from __future__ import annotations



def cmd_convert(args) -> int:
    import csv
    import io

    from annpred.data import kerneltuner as kt
    from annpred.data.rows import columns_for, row_values, version
    from annpred.errors import ParameterError
    from annpred.files import atomic_write_text

    if not kt.is_cache_file(args.cache):
        raise ParameterError(f"{args.cache}: expected a Kernel Tuner cache file "
                             "(.json or .json.gz)")
    c = kt.read_cache(args.cache)  # raises DataError before anything is written
    cols = columns_for(c.params, optional=False)  # no load average or machine of ours
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    ver = version()
    for i, r in enumerate(c.rows):
        row = row_values(c.kernel, c.variant, c.hardware, {p: _fmt(r[p]) for p in c.params},
                         c.params, runtime_s=r["runtime_s"], runtime_cv=r["runtime_cv"],
                         repeats=r["repeats"], runtime_min_s=r["runtime_min_s"],
                         sampler="kerneltuner", point_id=i, version=ver)
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
                       description="Read a Kernel Tuner cache file (.json or .json.gz) and "
                       "write one profiling-CSV row per configuration: tuning parameters as "
                       "columns, time (ms) as runtime_s (s), the spread of times as "
                       "runtime_cv; failed configurations are skipped and counted.")
    s.add_argument("cache", help="Kernel Tuner cache file (.json or .json.gz)")
    s.add_argument("-o", "--out", required=True, help="output CSV")
    s.set_defaults(func=cmd_convert)
