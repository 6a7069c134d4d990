"""Fast evaluation equals the full dependency-graph evaluation, to the cycle."""
from hypothesis import given, settings, strategies as st

from annpred.accel import description as D
from annpred.accel.evaluate import fast, fast_layer, full, stall_free, stall_free_shape
from annpred.accel.layers import make
from annpred.accel.mapping import plan, rect_lt


def _acc(rows, cols, df, kb, bw):
    base = D.get("systolic32")
    if df == "vector":
        rows = 1
    return base.with_(rows=rows, cols=cols, dataflow=df, ifmap={"kb": kb[0]},
                      filter={"kb": kb[1]}, ofmap={"kb": kb[2]}, dram_bandwidth=bw)


layers = st.one_of(
    st.builds(lambda h, r, c, m, s: make("conv2d", dict(H=h, W=h, R=r, S=r, C=c, M=m, stride=s)),
              st.integers(3, 14), st.integers(1, 3), st.integers(1, 8), st.integers(1, 20),
              st.integers(1, 2)),
    st.builds(lambda m, k, n: make("gemm", dict(M=m, K=k, N=n)),
              st.integers(1, 60), st.integers(1, 40), st.integers(1, 40)),
    st.builds(lambda h, r, c: make("dwconv", dict(H=h, W=h, R=r, S=r, C=c, stride=1)),
              st.integers(3, 12), st.integers(1, 3), st.integers(1, 3)))
accs = st.builds(_acc, st.integers(2, 12), st.integers(2, 12),
                 st.sampled_from(["os", "ws", "is", "vector"]),
                 st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
                 st.integers(1, 12))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(layers, accs, st.sampled_from(["user", "calc"]))
def test_fast_equals_full(layer, acc, mode):
    p = plan(acc, layer, mode)
    a, b = full(p), fast(plan(acc, layer, mode))
    assert a.cycles == b.cycles
    assert a.steps == b.steps
    assert b.evaluated <= a.evaluated
    assert stall_free_shape(acc, layer, mode) == stall_free(p)
    c = fast_layer(acc, layer, mode)      # the entry point (certified: closed form, no plan)
    assert (c.cycles, c.steps, c.evaluated) == (b.cycles, b.steps, b.evaluated)
    if stall_free(p):    # the certificate: no step stalls in the reference either
        assert a.stall_cycles == 0 and a.cycles == a.steps - 1


def test_fast_skips_iterations_on_a_large_layer():
    acc = D.get("systolic32")
    layer = make("gemm", dict(M=1024, K=256, N=64))   # 64 folds, DMA-bound periodic regime
    a, b = full(plan(acc, layer, "user")), fast(plan(acc, layer, "user"))
    assert a.cycles == b.cycles
    assert a.stall_cycles > 0
    assert b.evaluated * 100 < a.steps


def test_progress_is_reported_per_column_fold_and_changes_nothing():
    acc = D.get("gemmini")
    layer = make("gemm", dict(M=2000, K=300, N=100))   # 19 row x 7 column folds, not stall-free
    for evaluate in (full, fast):
        calls = []
        r = evaluate(plan(acc, layer, "user"), progress=lambda d, t: calls.append((d, t)))
        assert r == evaluate(plan(acc, layer, "user"))
        p = plan(acc, layer, "user")
        assert calls and all(t == p.col_folds for _, t in calls)
        done = [d for d, _ in calls]
        assert done == sorted(set(done)) and done[0] == 0 and done[-1] < p.col_folds


def test_calc_mode_is_scalesims_closed_form():
    # output stationary, ideal bandwidth, big ofmap buffer: folds * (T + rows + cols - 2) - 1
    acc = _acc(8, 8, "os", (64, 64, 64), 10)
    layer = make("conv2d", dict(H=10, W=10, R=3, S=3, C=4, M=8, stride=1))
    r = full(plan(acc, layer, "calc"))
    assert r.cycles == 8 * (36 + 8 + 8 - 2) - 1 == 399   # SCALE-Sim 3.0.0 reports 399


def test_rect_count_matches_enumeration():
    for r0, r1, c0, c1 in [(0, 5, 0, 3), (2, 7, 0, 4), (0, 1, 0, 9), (3, 4, 1, 2)]:
        for d in range(-2, 16):
            want = sum(1 for r in range(r0, r1) for c in range(c0, c1) if r + c < d)
            assert rect_lt(r0, r1, c0, c1, d) == want


def test_vectorised_positions_match_the_stream():
    # diag streams with a partial last block: every valid word's position, array vs scalar
    import numpy as np

    from annpred.accel.copies import _general
    from annpred.accel.mapping import _diag

    acc = D.get("systolic32")
    for block_rows, n_blocks, width, v_last in [(5, 3, 4, 2), (9, 1, 16, 9), (3, 4, 6, 6),
                                                (1, 7, 5, 1)]:
        s = _diag(acc, "ifmap", block_rows, n_blocks, width, v_last, block_rows, 0)
        cells = [(r, c) for r in range(s.total_rows)
                 for c in range(width if r < s.full_rows else v_last)]
        rows = np.array([r for r, _ in cells])
        cols = np.array([c for _, c in cells])
        want = [s.pos(r, c) for r, c in cells]
        assert _general(s, rows + cols, cols).tolist() == want
        assert sorted(want) == list(range(len(cells)))     # a permutation of the stream


def test_stall_free_certificate():
    small = make("conv2d", dict(H=16, W=16, R=3, S=3, C=16, M=32, stride=1))
    for mode in ("calc", "user"):        # tpu-v1's buffers hold every stream of this layer
        p = plan(D.get("tpu-v1"), small, mode)
        assert stall_free(p)
        assert full(p).cycles == p.total_steps() - 1 == fast(p).cycles
    assert stall_free(plan(D.get("gemmini"), small, "calc"))   # ideal bandwidth: always
    p = plan(D.get("systolic32"), make("gemm", dict(M=1024, K=256, N=64)), "user")
    assert not stall_free(p) and full(p).stall_cycles > 0


conv_layers = st.builds(
    lambda h, w, r, s, c, m, stride: make("conv2d", dict(H=h, W=h + w, R=r, S=s, C=c, M=m,
                                                         stride=stride)),
    st.integers(5, 24), st.integers(0, 4), st.integers(2, 5), st.integers(1, 5),
    st.integers(1, 12), st.integers(1, 20), st.integers(1, 3))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(conv_layers, st.integers(2, 12), st.integers(2, 12), st.sampled_from(["os", "ws"]),
       st.integers(1, 4), st.data())
def test_interval_copy_test_matches_word_by_word(layer, rows, cols, df, kb, data):
    # the copy test of overlapping windows: the interval form (and the cells word by word)
    # against the per-word reference, for random windows, fold rows and step ranges
    import numpy as np

    from annpred.accel import copies, intervals
    from annpred.accel.engine import initial_state

    acc = _acc(rows, cols, df, (kb, 1, 1), 2)
    p = plan(acc, layer, "user")
    if p.geometry is None:
        return
    p.memo = {}
    st_ = initial_state(p)
    s = p.streams["ifmap"]
    for _ in range(6):
        fr = data.draw(st.integers(0, p.row_folds - 1))
        kind = p.kind(fr, 0)
        steps = kind.steps
        l = data.draw(st.integers(0, steps - 1))
        n = data.draw(st.integers(1, steps - l))
        st_.reads["ifmap"].ws = data.draw(st.integers(0, s.n_sets - 1))
        want = copies.quiet_steps(p, st_, kind, fr, 0, l, n)
        assert intervals.quiet_steps_split(p, st_, kind, fr, 0, l, n) == want
        assert intervals.quiet_steps_cells(p, st_, kind, fr, l, n) == want
        fast_form = intervals.quiet_steps_fast(p, st_, kind, fr, 0, l, n)
        assert fast_form in (None, want)
        S, E = intervals.step_sets(p, kind, fr, l)
        P, Wd = copies.line_elements(p.geometry, kind.ifmap, fr, 0, l)
        assert len(S) == len(P)
        for i in range(len(P)):
            assert sorted(S[i][E[i]].tolist()) == \
                sorted(copies.word_sets(p.geometry, s, int(P[i]), int(Wd[i])))
        assert np.all(E.sum(axis=1) >= 1)        # every word has itself as a copy
