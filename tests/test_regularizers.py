"""The use-it-or-lose-it regularizer: its formula (both semantics), k_p = 0, the flush, vmap, errors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.errors import ConfigError
from snnjax.plasticity import Activity, LearningRule, chain
from snnjax_plugins.regularizers import (
    UseItOrLoseItState,
    apply_pending,
    default_tau_prun_ms,
    find_state,
    floor_columns,
    set_kp,
    use_it_or_lose_it,
)

DT = 0.1
N_PRE, N_POST, K = 4, 3, 2


def _activity(pre_row, n, use_idx):
    idx = jnp.nonzero(pre_row, size=K, fill_value=N_PRE)[0].astype(jnp.int32) if use_idx else None
    return Activity(pre=pre_row, post=jnp.zeros((N_POST,), bool), t_ms=n.astype(jnp.float32) * DT, dt_ms=DT,
                    gain=1.0, pre_idx=idx)


def simulate(rule: LearningRule, w0, raster, k_p=None, use_idx=True):
    """Run ``rule`` over ``raster[T, n_pre]``; returns (weights seen by transmission [T], weights after [T], state)."""
    s0 = rule.init(w0)
    if k_p is not None:
        s0 = set_kp(s0, k_p)

    def body(c, x):
        w, s = c
        n, row = x
        act = _activity(row, n, use_idx)
        w = rule.prepare(w, s, act)
        seen = w
        w, s = rule.update(w, s, act)
        return (w, s), (seen, w)

    (w, s), (seen, after) = jax.lax.scan(body, (w0, s0), (jnp.arange(raster.shape[0]), jnp.asarray(raster)))
    return seen, after, s


def _raster(T, spikes):
    r = np.zeros((T, N_PRE), bool)
    for i, steps in spikes.items():
        r[list(steps), i] = True
    return r


W0 = jnp.asarray(np.linspace(0.01, 0.05, N_PRE * N_POST).reshape(N_PRE, N_POST), jnp.float32)
# input 0 spikes at steps 30, 80, 81, 150; input 1 at 5 and 190; input 2 never; input 3 at 0 and 100
SPIKES = {0: [30, 80, 81, 150], 1: [5, 190], 3: [0, 100]}
T = 200
TAU = 5.0  # ms: large decays within 20 ms of simulated time


def _expected_lazy_seen(i, n):
    """Row ``i``'s factor as read by transmission at step ``n`` (lazy: only what earlier spikes applied, + now)."""
    f, last = 0.0, 0.0
    for m in SPIKES.get(i, []):
        if m > n:
            break
        f += ((m * DT - last) / TAU) ** 2
        last = m * DT
    return math.exp(-f)


def _expected_continuous(i, n):
    """Row ``i``'s factor at the start of step ``n`` (continuous: decayed up to t = n·dt)."""
    f, last = 0.0, 0.0
    for m in SPIKES.get(i, []):
        if m >= n:
            break
        f += ((m * DT - last) / TAU) ** 2
        last = m * DT
    f += ((n * DT - last) / TAU) ** 2
    return math.exp(-f)


@pytest.mark.parametrize("use_idx", [True, False])
def test_lazy_follows_formula(use_idx):
    rule = chain(use_it_or_lose_it(tau_prun_ms=TAU, semantics="lazy"))
    seen, after, s = simulate(rule, W0, _raster(T, SPIKES), use_idx=use_idx)
    seen = np.asarray(seen)
    for i in range(N_PRE):
        for n in range(T):
            np.testing.assert_allclose(seen[n, i], np.asarray(W0[i]) * _expected_lazy_seen(i, n), rtol=2e-6,
                                       atol=1e-12)
    # the never-spiking input is never touched (pending decay only)
    np.testing.assert_array_equal(np.asarray(after[-1, 2]), np.asarray(W0[2]))
    ts = np.asarray(find_state(s).t_s)
    np.testing.assert_allclose(ts, [150 * DT, 190 * DT, 0.0, 100 * DT], rtol=1e-6)


@pytest.mark.parametrize("use_idx", [True, False])
def test_continuous_follows_formula(use_idx):
    rule = use_it_or_lose_it(tau_prun_ms=TAU, semantics="continuous")
    seen, _, _ = simulate(rule, W0, _raster(T, SPIKES), use_idx=use_idx)
    seen = np.asarray(seen)
    for i in range(N_PRE):
        for n in range(0, T, 7):
            np.testing.assert_allclose(seen[n, i], np.asarray(W0[i]) * _expected_continuous(i, n), rtol=1e-4,
                                       atol=1e-10)


def test_continuous_carries_stdp_changes_along():
    """A change Δ made at t' decays by exp(−((t − t_s)² − (t' − t_s)²)/τ²) afterwards."""
    n_bump, delta = 40, 0.02

    def bump_update(w, s, a):
        return jnp.where(jnp.asarray(a.t_ms) == jnp.float32(n_bump * DT), w + delta, w), s

    rule = chain(LearningRule(lambda w: (), bump_update), use_it_or_lose_it(tau_prun_ms=TAU, semantics="continuous"))
    raster = np.zeros((120, N_PRE), bool)  # nobody spikes: t_s = 0
    seen, _, _ = simulate(rule, W0, raster)
    t, tb = 100 * DT, n_bump * DT
    expected = np.asarray(W0) * math.exp(-((t / TAU) ** 2)) + delta * math.exp(-((t / TAU) ** 2 - (tb / TAU) ** 2))
    np.testing.assert_allclose(np.asarray(seen[100]), expected, rtol=1e-4)


@pytest.mark.parametrize("semantics", ["lazy", "continuous"])
def test_kp_zero_leaves_weights_untouched(semantics):
    raster = np.random.default_rng(0).random((150, N_PRE)) < 0.05
    rule = chain(use_it_or_lose_it(tau_prun_ms=TAU, semantics=semantics))
    seen, after, _ = simulate(rule, W0, raster, k_p=0.0)
    np.testing.assert_array_equal(np.asarray(seen), np.broadcast_to(np.asarray(W0), seen.shape))
    np.testing.assert_array_equal(np.asarray(after[-1]), np.asarray(W0))
    # the same compiled program with k_p = 1 in the state decays: k_p is data, not structure
    run = jax.jit(lambda kp: simulate(rule, W0, raster, k_p=kp)[1][-1])
    assert np.all(np.asarray(run(jnp.float32(1.0))) < np.asarray(W0))
    np.testing.assert_array_equal(np.asarray(run(jnp.float32(0.0))), np.asarray(W0))


def test_never_firing_input_vanishes_after_flush():
    """Input 2 never fires in training; a flush step where every input fires applies its pending decay."""
    tau, n = 20.0, 2000  # 200 ms of training
    raster = np.zeros((n + 1, N_PRE), bool)
    raster[::10, 0] = True  # input 0: every 1 ms → small decays at each spike
    raster[n - 5, 1] = raster[n - 5, 3] = True  # inputs 1 and 3: once, shortly before the flush
    raster[n] = True  # the flush: every input fires once at t = 200 ms
    rule = use_it_or_lose_it(tau_prun_ms=tau, semantics="lazy")
    _, after, s = simulate(rule, W0, raster)
    np.testing.assert_array_equal(np.asarray(after[-2, 2]), np.asarray(W0[2]))  # pending only, before the flush
    assert np.all(np.asarray(after[-1, 2]) < 1e-12)  # exp(−(200/20)²) ≈ 4e-44 → ~0
    np.testing.assert_allclose(np.asarray(after[-1, 0]), np.asarray(W0[0]) * math.exp(-n / 10 * (1 / tau) ** 2),
                               rtol=1e-4)
    # the exact flush (apply_pending) equals the flush step without running one
    s_before = simulate(rule, W0, raster[:-1])[2]
    w_exact, s_exact = apply_pending(after[-2], s_before, n * DT, tau)
    np.testing.assert_allclose(np.asarray(w_exact), np.asarray(after[-1]), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(np.asarray(s_exact.t_s), np.asarray(s.t_s), rtol=1e-6)


@pytest.mark.parametrize("semantics", ["lazy", "continuous"])
def test_vmap_equals_per_seed_runs(semantics):
    rng = np.random.default_rng(1)
    S = 3
    rasters = jnp.asarray(rng.random((S, 120, N_PRE)) < 0.04)
    ws = jnp.asarray(rng.uniform(0, 0.05, (S, N_PRE, N_POST)), jnp.float32)
    kps = jnp.asarray([1.0, 0.0, 1.0], jnp.float32)
    rule = chain(use_it_or_lose_it(tau_prun_ms=TAU, semantics=semantics))
    fn = jax.jit(lambda w, r, kp: simulate(rule, w, r, k_p=kp)[1][-1])
    batched = np.asarray(jax.vmap(fn)(ws, rasters, kps))
    for i in range(S):
        np.testing.assert_allclose(batched[i], np.asarray(fn(ws[i], rasters[i], kps[i])), rtol=1e-6, atol=0)


def test_set_kp_and_defaults():
    rule = use_it_or_lose_it()
    s = rule.init(W0)
    assert isinstance(s, UseItOrLoseItState) and float(s.k_p) == 1.0 and float(jnp.max(s.t_s)) == 0.0
    assert default_tau_prun_ms() == 7500.0 == default_tau_prun_ms(3, 500.0)
    nested = (("other",), set_kp(jax.vmap(rule.init)(jnp.stack([W0, W0])), 0.0))
    assert nested[1].k_p.shape == (2,) and float(jnp.max(nested[1].k_p)) == 0.0
    assert float(find_state(set_kp(nested, 1)).k_p[0]) == 1.0
    with pytest.raises(ConfigError, match="k_p"):
        set_kp(nested, 0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tau_prun_ms": -5.0}, "tau_prun_ms must be a positive"),
        ({"tau_prun_ms": 0.0}, "tau_prun_ms must be a positive"),
        ({"k_p": 0.5}, "k_p must be 0"),
        ({"k_p": 2}, "k_p must be 0"),
        ({"semantics": "eager"}, "semantics must be one of lazy, continuous"),
        ({"n_classes": 0}, "n_classes"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        use_it_or_lose_it(**kwargs)


def test_registered_as_plugin():
    from snnjax.errors import PluginError
    from snnjax.plugins import get_registry

    reg = get_registry()
    assert "use-it-or-lose-it" in reg.names("regularizer")
    rule = reg.create("regularizer", "use-it-or-lose-it", tau_prun_ms=100.0, semantics="continuous")
    assert isinstance(rule, LearningRule)
    with pytest.raises(PluginError, match="tau_prun"):
        reg.create("regularizer", "use-it-or-lose-it", tau_prun=100.0)


# ----------------------------------------------------------------------------------------------
# options beyond the thesis: grace_ms, protect = "label", floor (each off by default)
# ----------------------------------------------------------------------------------------------


def _expected_grace_seen(i, n, grace):
    """As :func:`_expected_lazy_seen`, each gap counting only beyond ``grace`` ms."""
    f, last = 0.0, 0.0
    for m in SPIKES.get(i, []):
        if m > n:
            break
        f += (max(m * DT - last - grace, 0.0) / TAU) ** 2
        last = m * DT
    return math.exp(-f)


@pytest.mark.parametrize("use_idx", [True, False])
def test_grace_follows_its_formula_and_keeps_the_fast_form(use_idx):
    grace = 4.0  # ms: input 0's gaps 3, 5, 0.1, 6.9 ms cost 0, 1, 0, 2.9 ms
    rule = chain(use_it_or_lose_it(tau_prun_ms=TAU, semantics="lazy", grace_ms=grace))
    seen, _, _ = simulate(rule, W0, _raster(T, SPIKES), use_idx=use_idx)
    seen = np.asarray(seen)
    for i in range(N_PRE):
        for n in range(T):
            np.testing.assert_allclose(seen[n, i], np.asarray(W0[i]) * _expected_grace_seen(i, n, grace),
                                       rtol=2e-6, atol=1e-12)
    assert _expected_grace_seen(0, T, grace) != _expected_lazy_seen(0, T)  # the grace changes something here
    form = use_it_or_lose_it(tau_prun_ms=TAU, grace_ms=grace).fast
    f = form.row_factor(20.0, jnp.asarray([19.0, 10.0, 0.0]), 1.0, jnp.float32)
    np.testing.assert_allclose(np.asarray(f), np.exp(-(np.maximum([1.0 - grace, 10 - grace, 20 - grace], 0) / TAU)
                                                     ** 2), rtol=1e-6)
    # with the grace, the exact flush applies the same formula
    w, _ = apply_pending(W0, UseItOrLoseItState(jnp.asarray([19.0, 10.0, 0.0, 20.0]), jnp.float32(1)), 20.0, TAU,
                         grace_ms=grace)
    np.testing.assert_allclose(np.asarray(w)[:, 0], np.asarray(W0)[:, 0] * np.concatenate([np.asarray(f), [1.0]]),
                               rtol=1e-6)


def test_options_off_is_the_thesis_program_bit_for_bit():
    raster = np.random.default_rng(3).random((150, N_PRE)) < 0.05
    plain = simulate(chain(use_it_or_lose_it(tau_prun_ms=TAU)), W0, raster)
    off = simulate(chain(use_it_or_lose_it(tau_prun_ms=TAU, grace_ms=0.0, protect="none", floor=0.0)), W0, raster)
    np.testing.assert_array_equal(np.asarray(plain[1]), np.asarray(off[1]))
    s = use_it_or_lose_it(tau_prun_ms=TAU).init(W0)
    assert s.t_label is None and s.floor is None  # the state's structure (and checkpoints) unchanged


def _run_with_post(rule, w0, pre, post, gate, gain):
    """Like :func:`simulate`, with postsynaptic spikes ``post[T, n_post]``, a gate and a gain."""
    s0 = rule.init(w0)

    def body(c, x):
        w, s = c
        n, p, q = x
        act = Activity(pre=p, post=q, t_ms=n.astype(jnp.float32) * DT, dt_ms=DT, gain=gain,
                       gate=jnp.asarray(gate, jnp.float32))
        w = rule.prepare(w, s, act)
        seen = w
        w, s = rule.update(w, s, act)
        return (w, s), seen

    (w, s), seen = jax.lax.scan(body, (w0, s0), (jnp.arange(pre.shape[0]), jnp.asarray(pre), jnp.asarray(post)))
    return np.asarray(seen), s


def test_protect_label_restarts_every_clock_at_a_spike_of_the_label_segment_while_learning():
    pre = _raster(T, {0: [30, 150], 1: [170]})
    post = np.zeros((T, N_POST), bool)
    post[100, 0] = True  # the label's segment (gate 1) fires at 10 ms
    post[160, 2] = True  # a neuron outside it (gate 0) at 16 ms: restarts nothing
    gate = [1.0, 0.0, 0.0]
    rule = use_it_or_lose_it(tau_prun_ms=TAU, protect="label")
    assert rule.fast is None  # general path only
    seen, s = _run_with_post(rule, W0, pre, post, gate, 1.0)
    # input 0: 3 ms at its first spike; at 15 ms its age counts from the label spike at 10 ms, not from 3 ms
    np.testing.assert_allclose(seen[150, 0], np.asarray(W0[0]) * math.exp(-((3 / TAU) ** 2) - (5 / TAU) ** 2),
                               rtol=2e-6)
    # input 1 (never spiked before): its age counts from 10 ms as well
    np.testing.assert_allclose(seen[170, 1], np.asarray(W0[1]) * math.exp(-((7 / TAU) ** 2)), rtol=2e-6)
    assert float(s.t_label) == pytest.approx(10.0)
    # learning off (the flush, test): ages count from each input's own last spike, and nothing is stamped
    seen0, s0 = _run_with_post(rule, W0, pre, post, gate, 0.0)
    np.testing.assert_allclose(seen0[150, 0], np.asarray(W0[0]) * math.exp(-((3 / TAU) ** 2) - (12 / TAU) ** 2),
                               rtol=2e-6)
    assert float(s0.t_label) == 0.0


def test_floor_scales_a_column_up_to_its_share_of_the_initial_total_only_while_learning_with_kp():
    rho = 0.9
    rule = use_it_or_lose_it(tau_prun_ms=TAU, floor=rho)
    assert rule.fast is None
    s = rule.init(W0)
    np.testing.assert_allclose(np.asarray(s.floor), rho * np.asarray(W0).sum(0), rtol=1e-6)
    pre = _raster(T, {0: [150], 3: [150]})  # inputs 0 and 3 lose (15/5)² → e^-9 of their weights at 15 ms
    post = np.zeros((T, N_POST), bool)
    seen, s1 = _run_with_post(rule, W0, pre, post, [1.0, 0.0, 0.0], 1.0)
    # the sum counts the pending decay of inputs 1 and 2 (silent since 0 ms): at 15 ms they would lose
    # e^-9 too, so every column is far below its floor and is scaled up to it
    w_seen = seen[150]  # after the decay at 15 ms, before the update's floor
    t = 15.0
    phi = np.exp(-((t - np.asarray([15.0, 0.0, 0.0, 15.0])) / TAU) ** 2)
    after = np.asarray(rule.update(jnp.asarray(w_seen), s1, Activity(
        pre=jnp.zeros(N_PRE, bool), post=jnp.zeros(N_POST, bool), t_ms=t, gain=1.0))[0])
    expected = w_seen * (rho * np.asarray(W0).sum(0) / (w_seen * phi[:, None]).sum(0))[None, :]
    np.testing.assert_allclose(after, expected, rtol=1e-4)
    np.testing.assert_allclose((after * phi[:, None]).sum(0), rho * np.asarray(W0).sum(0), rtol=1e-4)
    # without the row factor the plain sum: a column at or above its floor is left alone, one below scaled to it
    floored = np.asarray(floor_columns(W0, jnp.asarray([0.0, 1.0, 0.0])))
    np.testing.assert_array_equal(floored[:, [0, 2]], np.asarray(W0)[:, [0, 2]])
    np.testing.assert_allclose(floored[:, 1].sum(), 1.0, rtol=1e-6)
    # learning off, or k_p = 0: no floor
    decayed = np.asarray(W0).copy()
    decayed[[0, 3]] *= math.exp(-9)
    seen_off, _ = _run_with_post(rule, W0, pre, post, [1.0, 0.0, 0.0], 0.0)
    np.testing.assert_allclose(seen_off[-1], decayed, rtol=1e-5)
    rule0 = chain(use_it_or_lose_it(tau_prun_ms=TAU, floor=rho, k_p=0.0))
    seen_k0, _ = _run_with_post(rule0, W0, pre, post, [1.0, 0.0, 0.0], 1.0)
    np.testing.assert_array_equal(seen_k0[-1], np.asarray(W0))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"grace_ms": -1.0}, "grace_ms must be a number of ms ≥ 0"),
        ({"protect": "segment"}, "protect must be one of none, label"),
        ({"floor": 1.5}, "floor must be a fraction"),
        ({"floor": 0.5, "semantics": "continuous"}, "options of the lazy semantics only"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        use_it_or_lose_it(**kwargs)


def test_grace_runs_on_the_fast_path_as_on_the_general_path():
    """``grace_ms`` keeps the declared fast form: the network's deferred path equals its per-step path."""
    import dataclasses

    from snnjax_plugins.network import init_network, present_raster, thesis_config
    from snnjax_plugins.rules import segment_gate, segment_supervised

    # τ 30 ms, grace 10 ms: the gaps across the 20 ms rest exceed the grace, most inside an image do not
    rule = chain(segment_supervised(n_classes=3), use_it_or_lose_it(tau_prun_ms=30.0, grace_ms=10.0))
    cfg0 = thesis_config(t_present_ms=60.0, t_rest_ms=20.0, max_rate_hz=400.0, lazy_block_ms=7.3)
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, cfg0.n_input).astype(np.float32)
    img[img < 170] = 0
    raster = jnp.asarray(rng.random((cfg0.steps_present, cfg0.n_input)) < img / 255 * 0.03)
    w = jax.random.choice(jax.random.key(5), jnp.asarray([0.0, 0.0002, 0.025, 0.0498, 0.05]), (784, 30))
    out = []
    for mode in ("lazy", "reference"):
        c = dataclasses.replace(cfg0, plasticity=mode)
        st = init_network(jax.random.key(1), c, rule)
        st = st._replace(w=w)
        f = jax.jit(lambda s, r, c=c: present_raster(s, r, c, rule, gate=segment_gate(2, 30, 3)))
        for i in range(2):
            st, o = f(st, raster if i == 0 else raster[::-1])
        out.append((np.asarray(st.w), np.asarray(o.exc_counts)))
    np.testing.assert_array_equal(out[0][1], out[1][1])
    np.testing.assert_allclose(out[0][0], out[1][0], atol=5e-7, rtol=0)
    # the grace mattered: the same run without it decays more
    plain = chain(segment_supervised(n_classes=3), use_it_or_lose_it(tau_prun_ms=30.0))
    c = dataclasses.replace(cfg0, plasticity="lazy")
    st = init_network(jax.random.key(1), c, plain)._replace(w=w)
    f = jax.jit(lambda s, r: present_raster(s, r, c, plain, gate=segment_gate(2, 30, 3)))
    for i in range(2):
        st, _ = f(st, raster if i == 0 else raster[::-1])
    assert np.abs(np.asarray(st.w) - out[0][0]).max() > 1e-4
