"""``choose``: pick the fastest (variant, hardware) for one kernel call.

Every candidate of a call is predicted in one vectorised numpy pass (:mod:`annpred.runtime.
stacked`); the stacked arrays, compiled complexity functions and default candidate set are
cached per (model directory, kernel, candidate set), and decisions are memoised per call
shape, so a decision costs microseconds and never imports torch.
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Mapping

from annpred.errors import ParameterError, UnknownKernelError
from annpred.runtime import caches
from annpred.runtime import correction as _correction
from annpred.runtime.choice import (_CONFIG, POLICIES, Candidate, Choice, NoCandidatesError,
                                    as_candidates)
from annpred.runtime.predictor import _env_key, catalog_kernel, check_point, resolve_models
from annpred.runtime.stacked import _Plan
from annpred.runtime.transfer import TRANSFER
from annpred.spec import hardware as hw
from annpred.spec.catalog import get_kernel


def _kernel_spec(name: str, pred) -> Any:
    """The catalog Kernel, or None for a kernel known only from its models."""
    k = catalog_kernel(name)
    if k is None and not pred.combinations(name):
        get_kernel(name)  # raises, listing the known kernels
    return k


def _default_candidates(pred, kname: str, spec) -> tuple[Candidate, ...]:
    """Every variant with a model for hardware present here. Models of one variant for the
    same thread count under several CPU ids (this machine's, another machine's, a legacy
    id) describe the same execution here: only the best is kept, this machine's model
    first, then an adapted one (:mod:`annpred.runtime.correction`). When some candidates
    are this machine's or adapted, the others (another machine's, unadapted) are left out;
    only when none is do the others stand, flagged and untrusted."""
    slots: dict = {}
    for k, v, h in pred.combinations(kname):
        if not hw.present(h):
            continue
        if spec is not None:
            try:
                var = spec.variant(v)
            except UnknownKernelError:
                continue  # a model for a variant the catalog no longer has
            if var.device != hw.parse_id(h)["device"]:
                continue  # e.g. a CPU variant's model filed under a GPU id
        info = hw.parse_id(h)
        slot = (v, info["threads"]) if info["device"] == "cpu" else (v, h)
        m = pred.models[(k, v, h)]
        rank = (m.machine_match, m.trusted_machine)
        if slot not in slots or rank > slots[slot][0]:
            slots[slot] = (rank, Candidate(v, h))
    if any(rank[1] for rank, _ in slots.values()):  # some models describe this machine:
        return tuple(c for rank, c in slots.values() if rank[1])  # leave the others out
    return tuple(c for _, c in slots.values())


def _plan(pred, kname: str, spec, candidates, gen: int | None = None) -> _Plan:
    """The plan of ``pred``'s models of ``kname`` for ``candidates`` (None: the default
    candidates), cached per predictor; ``gen``: :data:`caches.GENERATION` read before the
    caller read ``pred`` and ``spec`` (a plan built from what a clear made stale is not
    kept; default: now)."""
    if gen is None:
        gen = caches.GENERATION
    if candidates is None:
        cands, key = None, (kname, None)
    else:
        cands = tuple(Candidate.parse(c) for c in as_candidates(candidates))
        if not cands:
            raise ParameterError("candidates is empty")
        key = (kname, cands)
    plan = caches.PLANS.get(pred, _NO_MEMO).get(key)
    if plan is None:
        with caches.BUILD:  # built once, however many threads ask at the same time
            per = caches.per_predictor(caches.PLANS, pred, gen)
            plan = per.get(key)
            if plan is None:
                plan = caches.put(per, key, _new_plan(pred, kname, spec, cands), gen)
                for m in plan.models:
                    _correction.warn_mismatch(m)
    return plan


def _new_plan(pred, kname: str, spec, cands) -> _Plan:
    if cands is None:
        cands = _default_candidates(pred, kname, spec)
        if not cands:
            have = sorted({h for _, _, h in pred.combinations(kname)})
            raise NoCandidatesError(
                f"no model of kernel {kname!r} for hardware present on this machine "
                f"({hw.cpu_id(hw.cpu_count())}); models exist for: "
                + (", ".join(have) if have else "(none)")
                + f" (searched {', '.join(str(r) for r in pred.roots)}); profile and "
                "train here (annpred quickstart) or pass candidates explicitly")
        return _Plan(pred, kname, spec, cands)
    from annpred.validate import safe_name

    for c in cands:  # names that could never have a model (``../x``): say so
        safe_name(c.variant, f"candidate {c}: variant", ParameterError)
        safe_name(c.hardware, f"candidate {c}: hardware", ParameterError)
    if spec is not None:
        for c in cands:
            if not c.hardware.startswith("sim-"):   # modelled accelerators: variant sim
                spec.variant(c.variant)  # unknown variant: clear error listing the variants
    if len(set(cands)) != len(cands):
        raise ParameterError("candidates hold duplicates")
    return _Plan(pred, kname, spec, cands)


def choose(kernel, params: Mapping[str, Any], candidates=None, models=None, *,
           default=None, policy: str | None = None,
           transfer_bytes: float | None = None, memo: bool = True,
           trust_machine: bool = False) -> Choice:
    """Choose the fastest candidate for one call of ``kernel`` with ``params``.

    ``candidates``: ``(variant, hardware)`` pairs or ``"variant@hardware"`` strings (any
    iterable, read once); default: every variant with a model for hardware present on this
    machine (CPU thread counts are separate hardware ids, so 1 vs 2 threads is part of the
    decision). Explicit candidates may name hardware that is not on this machine (to plan
    for another one); :func:`dispatch`, which runs the choice here, refuses them.
    ``models``: a model directory, a list of them, or a
    :class:`~annpred.runtime.predictor.Predictor` (default: the user's calibrated models
    over the shipped ones; a directory's models are read once, see :func:`load_models`'s
    ``reload``). ``default``: the fallback, a variant or ``"variant@hardware"`` (default:
    :func:`set_default`'s, else the kernel's first CPU catalog variant among the candidates
    on its candidate hardware with the most threads; when no candidate is a CPU variant of
    the catalog, the kernel's first variant on all of this machine's cores, which is then
    not one of the candidates; for a kernel known only from its models, the first
    candidate). ``policy``: ``strict`` | ``trusted`` | ``extrapolate`` (see
    the module doc).
    ``transfer_bytes``: bytes a CUDA candidate must move between host and device; adds
    :data:`TRANSFER` seconds to CUDA candidates' predictions.
    ``memo``: remember the decision per (models, kernel, params, options), so that a call
    shape seen before is decided by one dictionary lookup (runtimes call the same shapes
    again and again); the same :class:`Choice` object is returned: its mappings
    (``params``, ``predicted``, ``in_range``, ...) are read-only, and its attributes must
    not be reassigned.
    ``trust_machine``: trust models measured on another machine (or on an unknown one, like
    the shipped models with legacy ids) that no calibration has adapted to this one; by
    default such candidates are untrusted, like extrapolations (``Choice.machine_match``
    flags them; ``policy="extrapolate"`` trusts them too).
    """
    kname = kernel if isinstance(kernel, str) else getattr(kernel, "name", None)
    if not isinstance(kname, str):
        raise UnknownKernelError(f"kernel must be a name or a Kernel, got {kernel!r}")
    if candidates is not None:
        candidates = as_candidates(candidates)  # read once: a generator works too
    gen = caches.GENERATION  # before any state is read: see caches.put
    fast = None
    if models is None and candidates is None:  # the default path: one cache lookup
        dkey = (_env_key(), kname)
        fast = caches.DEFAULT_PLANS.get(dkey)
    pred = fast[0] if fast is not None else resolve_models(models)
    key = None
    if memo:
        try:
            key = (kname, tuple(params.items()), candidates, default, policy,
                   transfer_bytes, trust_machine)
            hit = caches.MEMO.get(pred, _NO_MEMO).get(key)
        except (TypeError, AttributeError):  # unhashable: decide without the memo
            key = hit = None
        if hit is not None:
            return hit
    if fast is not None:
        spec, plan = fast[1], fast[2]
        point = check_point(spec, params)
    else:
        spec = _kernel_spec(kname, pred)
        point = check_point(spec, params)
        plan = _plan(pred, kname, spec, candidates, gen)
        if models is None and candidates is None:
            caches.put(caches.DEFAULT_PLANS, dkey, (pred, spec, plan), gen)
    choice = _decide(plan, point, default, policy, transfer_bytes, trust_machine)
    if key is not None:
        memo_d = caches.per_predictor(caches.MEMO, pred, gen)
        if len(memo_d) >= caches.MEMO_SIZE:
            memo_d.clear()
        caches.put(memo_d, key, choice, gen)
    return choice


_NO_MEMO: dict = {}


def _decide(plan: _Plan, point: dict, default, policy, transfer_bytes,
            trust_machine: bool = False) -> Choice:
    """The decision at one validated point (small lists: plain Python beats numpy here)."""
    policy = policy or _CONFIG["policy"]
    if policy not in POLICIES:
        raise ParameterError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    fb = plan.fallback(default)  # resolved (and a bad one refused) on every call, not only when needed
    try:
        x = tuple(map(float, plan.take(point)))  # the parameters in the plan's order
    except KeyError as exc:
        raise ParameterError(f"kernel {plan.kernel}: the models need parameter "
                             f"{exc.args[0]!r}") from None
    cands = plan.cands
    n = len(cands)
    if plan.models:
        pm = plan.seconds(x)
        im = plan.in_range(x)
    else:
        pm, im = [], []
    mok = plan.machine_ok if not trust_machine else [True] * len(plan.models)
    if plan.full:
        secs, inr = pm, im
        mine = mok
    else:
        secs, inr, mine = [math.nan] * n, [False] * n, [True] * n
        for j, i in enumerate(plan.model_list):
            secs[i], inr[i], mine[i] = pm[j], im[j], mok[j]
    transfer = {}
    if transfer_bytes is not None and plan.cuda_idx:
        t = TRANSFER.seconds(transfer_bytes)
        for i in plan.cuda_idx:
            secs[i] += t
            transfer[cands[i]] = t
    inf = math.inf
    if math.isfinite(sum(secs)) and min(secs) > 0:  # the common case: every one usable
        ok = plan.everyone if len(secs) == n else [True] * n
    else:  # a runtime <= 0 (an identity-target network) is as unusable as inf or nan
        ok = [s == s and 0 < s < inf for s in secs]
    if plan.supports:
        eligible = [True] * n
        unsupported = []
        for i, v in plan.supports:
            if not v.supports_point(point):
                eligible[i] = False
                unsupported.append(cands[i])
        unsupported = tuple(unsupported)
    else:
        eligible, unsupported = plan.everyone, ()
    extrapolate = policy == "extrapolate"
    best_any, best_trusted, all_trusted = -1, -1, True
    u1 = u2 = -1  # the fastest and second fastest usable candidates (for the unsure test)
    for i in range(n):
        if not (eligible[i] and ok[i]):
            all_trusted = all_trusted and not eligible[i]
            continue
        s = secs[i]
        if best_any < 0 or s < secs[best_any]:
            best_any = i
        if inr[i] and mine[i]:
            if best_trusted < 0 or s < secs[best_trusted]:
                best_trusted = i
        else:
            all_trusted = False
        if inr[i] or extrapolate:
            if u1 < 0 or s < secs[u1]:
                u1, u2 = i, u1
            elif u2 < 0 or s < secs[u2]:
                u2 = i
    if policy == "strict":
        pick = best_trusted if all_trusted else -1
    elif policy == "trusted":
        pick = best_trusted
    else:
        pick = best_any
    predicted_best = cands[best_any] if best_any >= 0 else None
    match, adapted = _machine_flags(plan)
    unsure, why_unsure = False, ""
    if pick >= 0:  # the runner-up: the fastest usable candidate other than the pick
        unsure, why_unsure = _unsure(plan, secs, pick, u2 if u1 == pick else u1)
    # the Choice receives lists and builds its dicts (and the reason's text) when read
    if pick >= 0 and not (unsure and _CONFIG["on_unsure"] == "fallback"):
        best = cands[pick]
        if all_trusted:
            reason = why_unsure
        else:
            def reason():
                return "; ".join(filter(None, [
                    "untrusted: " + _untrusted(plan, point, eligible, ok, inr, mine),
                    why_unsure() if unsure else ""]))
        return Choice(plan.kernel, point, best.variant, best.hardware, secs, inr,
                      False, reason, predicted_best, unsupported, transfer, policy,
                      unsure, plan, match, adapted)
    if unsure:
        why = why_unsure
    elif not any(eligible):
        why = "no candidate supports this point"
    else:
        def why():
            return _untrusted(plan, point, eligible, ok, inr, mine)
    return Choice(plan.kernel, point, fb.variant, fb.hardware, secs, inr, True,
                  why, predicted_best, unsupported, transfer, policy, unsure, plan,
                  match, adapted)


def _unsure(plan: _Plan, secs: list, pick: int, second: int):
    """Whether the chosen candidate's and the runner-up's (``second``: the fastest other
    usable candidate, eligible, finite, in range unless extrapolating; -1 if none)
    prediction intervals overlap by more than the configured share of the narrower one (log
    scale). Returns ``(unsure, reason)``, the reason as a function that writes the text."""
    if second < 0:
        return False, ""
    a, b = plan.iv[pick], plan.iv[second]
    if a is None or b is None:
        return False, ""
    la, lb = math.log(secs[pick]), math.log(secs[second])
    lo1, hi1, lo2, hi2 = la + a[0], la + a[1], lb + b[0], lb + b[1]
    width = min(hi1 - lo1, hi2 - lo2)
    share = (min(hi1, hi2) - max(lo1, lo2)) / width if width > 0 else 0.0
    if share <= _CONFIG["unsure_overlap"]:
        return False, ""

    def text() -> str:
        return (f"unsure: the intervals of {plan.cands[pick]} and {plan.cands[second]} "
                f"overlap by {share:.0%} (predicted {secs[pick]:.3g} s vs "
                f"{secs[second]:.3g} s)")
    return True, text


def _machine_flags(plan: _Plan) -> tuple[dict, dict]:
    """Per candidate: measured on this machine (None without a model); adapted to it."""
    flags = getattr(plan, "_machine_flags", None)
    if flags is None:
        match = {c: None for c in plan.cands}
        adapted = {c: False for c in plan.cands}
        for j, i in enumerate(plan.model_list):
            match[plan.cands[i]] = plan.machine_match[j]
            adapted[plan.cands[i]] = plan.models[j].correction is not None
        # read-only: every Choice of the plan shares them
        flags = plan._machine_flags = (MappingProxyType(match), MappingProxyType(adapted))
    return flags


def _untrusted(plan: _Plan, point, eligible, ok, inr, mine=None) -> str:
    """Why candidates are untrusted, in words. Without a training-range problem the text
    depends on the flags alone and is kept per plan (decisions stay cheap)."""
    key = None
    if all(inr[i] or not eligible[i] or not ok[i] for i in range(len(inr))):
        key = (tuple(eligible), tuple(ok), None if mine is None else tuple(mine))
        cached = plan._why.get(key)
        if cached is not None:
            return cached
    text = _untrusted_text(plan, point, eligible, ok, inr, mine)
    if key is not None:
        plan._why[key] = text
    return text


def _untrusted_text(plan: _Plan, point, eligible, ok, inr, mine=None) -> str:
    parts = []
    foreign = []
    oor: dict[str, list] = {}
    for i, c in enumerate(plan.cands):
        if not eligible[i]:
            continue
        if i in plan.missing:
            parts.append(f"no model for {c}")
        elif not ok[i]:
            parts.append(f"the model of {c} predicts no usable runtime here (not finite, or <= 0)")
        else:
            if mine is not None and not mine[i]:
                foreign.append(str(c))
            if not inr[i]:
                for p, (v, (lo, hi)) in plan.out_of_range(plan.model_list.index(i),
                                                          point).items():
                    oor.setdefault(f"{p}={v:g} outside [{lo:g}, {hi:g}]", []).append(str(c))
    for what, cs in oor.items():
        parts.append(f"{what} (training range of {len(cs)} candidate(s))")
    if foreign:
        parts.append(f"{len(foreign)} candidate(s) measured on another machine and not "
                     f"adapted to this one ({', '.join(foreign[:3])}"
                     f"{', ...' if len(foreign) > 3 else ''}; run `annpred calibrate "
                     "--quick`, or trust_machine=True)")
    return "; ".join(parts) or "no trusted candidate"
