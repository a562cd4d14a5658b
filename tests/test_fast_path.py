"""Deferred (lazy) on_post plasticity = the general per-step rule path, up to float rounding; dropped-event counts."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.errors import ConfigError
from snnjax.plasticity import chain, clip
from snnjax_plugins.network import check_dropped, dc15_config, init_network, present, present_raster, thesis_config
from snnjax_plugins.rules import all_ltd, lazy_form, segment_gate, segment_supervised, stdp, stdp_dc15

REC = ("exc_spikes", "inh_spikes")


def _raster(cfg, seed, rate):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, cfg.n_input).astype(np.float32)
    img[img < 170] = 0
    return jnp.asarray(rng.random((cfg.steps_present, cfg.n_input)) < img / 255 * rate)


def _both(cfg, rule, raster, gate, n_images=2, w=None):
    """Run ``n_images`` presentations with the deferred and with the general path; return both results."""
    out = []
    for mode in ("lazy", "reference"):
        c = dataclasses.replace(cfg, plasticity=mode)
        st = init_network(jax.random.key(1), c, rule)
        if w is not None:
            st = st._replace(w=w)
        f = jax.jit(lambda s, r: present_raster(s, r, c, rule, gate=gate, record=REC))
        sp = []
        for i in range(n_images):
            st, o = f(st, raster if i == 0 else raster[::-1])
            sp.append((np.asarray(o.monitors["exc_spikes"]), np.asarray(o.monitors["inh_spikes"])))
            assert int(np.asarray(o.dropped_events).sum()) == 0
        out.append((st, sp))
    return out


def _assert_same(a, b, atol):
    (sa, spa), (sb, spb) = a, b
    for (ea, ia), (eb, ib) in zip(spa, spb):
        np.testing.assert_array_equal(ea, eb)
        np.testing.assert_array_equal(ia, ib)
    assert sum(int(e.sum()) for e, _ in spa) > 0, "no spikes: the comparison is empty"
    np.testing.assert_allclose(np.asarray(sa.w), np.asarray(sb.w), atol=atol, rtol=0)
    for x, y in zip(jax.tree_util.tree_leaves(sa.rule_state), jax.tree_util.tree_leaves(sb.rule_state)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-9, rtol=1e-4)


THESIS = thesis_config(t_present_ms=60.0, t_rest_ms=20.0, max_rate_hz=400.0, lazy_block_ms=7.3)
DC15 = dc15_config(20, t_present_ms=80.0, t_rest_ms=20.0, max_rate_hz=300.0, min_spikes=0, lazy_block_ms=10.0, k_post=20)


@pytest.mark.parametrize("name", ["segment", "stdp-nearest", "all-ltd"])
def test_lazy_equals_reference_trace_family(name):
    rule = {"segment": segment_supervised(n_classes=3), "stdp-nearest": stdp(pairing="nearest", lr1=0.5, lr2=2.0),
            "all-ltd": all_ltd()}[name]
    gate = segment_gate(1, 30, 3)
    # weights near the bounds so that clipping happens on both sides
    w = jax.random.choice(jax.random.key(4), jnp.asarray([0.0, 0.0002, 0.025, 0.0498, 0.05]), (784, 30))
    a, b = _both(THESIS, rule, _raster(THESIS, 0, 0.03), gate, w=w)
    _assert_same(a, b, atol=1e-7)


def test_lazy_equals_reference_dc15():
    rule = stdp_dc15()
    gate = jnp.asarray(np.random.default_rng(2).random(20) < 0.7, jnp.float32)
    a, b = _both(DC15, rule, _raster(DC15, 1, 0.12), gate)
    _assert_same(a, b, atol=2e-6)


@pytest.mark.parametrize("k_p", [1.0, 0.0])
def test_lazy_equals_reference_with_use_it_or_lose_it(k_p):
    """The lazy decay of use-it-or-lose-it, chained to the thesis rule, runs on the deferred path exactly."""
    from snnjax_plugins.regularizers import set_kp, use_it_or_lose_it

    rule = chain(segment_supervised(n_classes=3), use_it_or_lose_it(tau_prun_ms=30.0))
    assert lazy_form(rule) is not None and lazy_form(rule).row_decay.tau_prun_ms == 30.0
    gate = segment_gate(2, 30, 3)
    w = jax.random.choice(jax.random.key(5), jnp.asarray([0.0, 0.0002, 0.025, 0.0498, 0.05]), (784, 30))
    out = []
    for mode in ("lazy", "reference"):
        c = dataclasses.replace(THESIS, plasticity=mode)
        st = init_network(jax.random.key(1), c, rule)
        st = st._replace(w=w, rule_state=set_kp(st.rule_state, k_p))
        f = jax.jit(lambda s, r: present_raster(s, r, c, rule, gate=gate, record=REC))
        sp = []
        raster = _raster(THESIS, 3, 0.03)
        for i in range(3):
            st, o = f(st, raster if i != 1 else raster[::-1])
            sp.append((np.asarray(o.monitors["exc_spikes"]), np.asarray(o.monitors["inh_spikes"])))
        out.append((st, sp))
    _assert_same(out[0], out[1], atol=5e-7)  # three images of float rounding in the deferred sums (weights ≤ 0.05)
    t_s = np.asarray(out[0][0].rule_state[1].t_s)
    assert (t_s > 0).sum() > 100  # the clock of every input that spiked moved
    if k_p:  # the decay did something: weights differ from the same run without it
        c = dataclasses.replace(THESIS, plasticity="lazy")
        st = init_network(jax.random.key(1), c, rule)
        st = st._replace(w=w, rule_state=set_kp(st.rule_state, 0.0))
        f = jax.jit(lambda s, r: present_raster(s, r, c, rule, gate=gate))
        raster = _raster(THESIS, 3, 0.03)
        for i in range(3):
            st, _ = f(st, raster if i != 1 else raster[::-1])
        assert np.abs(np.asarray(st.w) - np.asarray(out[0][0].w)).max() > 1e-4


def test_lazy_form_detection():
    assert lazy_form(stdp()) is not None and lazy_form(stdp_dc15()) is not None
    assert lazy_form(segment_supervised(n_classes=3)) is not None
    assert lazy_form(stdp(bounds="soft")) is None  # soft bounds: increments do not commute with clipping
    assert lazy_form(chain(stdp(), clip(0.0, 0.04))) is None
    from snnjax_plugins.regularizers import use_it_or_lose_it

    assert lazy_form(chain(stdp(), use_it_or_lose_it(semantics="continuous"))) is None  # dense per-step decay
    assert lazy_form(chain(stdp(), use_it_or_lose_it(), clip(0.0, 0.04))) is None
    assert lazy_form(chain(use_it_or_lose_it(), stdp())) is None  # the decay must follow the rule
    assert lazy_form(segment_supervised(n_classes=3, target=stdp(), others=all_ltd())) is None
    with pytest.raises(ConfigError):
        st = init_network(jax.random.key(0), dataclasses.replace(THESIS, plasticity="lazy"), chain(stdp()))
        present_raster(st, _raster(THESIS, 0, 0.05), dataclasses.replace(THESIS, plasticity="lazy"), chain(stdp()))


def test_dropped_events_are_counted():
    cfg = dataclasses.replace(THESIS, k_in=2, k_inh=1)
    rule = segment_supervised(n_classes=3)
    st = init_network(jax.random.key(0), cfg, rule)
    raster = _raster(cfg, 3, 0.2)
    _, out = jax.jit(lambda s, r: present_raster(s, r, cfg, rule))(st, raster)
    want_in = int(np.maximum(np.asarray(raster).sum(1) - 2, 0).sum())
    assert int(out.dropped_events[0]) == want_in > 0
    with pytest.raises(ConfigError, match="k_in"):
        check_dropped(out, cfg)
    # Poisson input: the sampler's table counts the same way; defaults give none
    _, out = jax.jit(lambda s: present(s, jnp.full(784, 255.0), jax.random.key(1), cfg, rule))(st)
    assert int(out.dropped_events[0]) > 0


def test_inference_path_gives_the_same_spikes_as_learning_off():
    """``plastic=False`` (drive computed once per image, no rule) = ``learn=0`` on the plastic path."""
    from snnjax import data
    from snnjax.plugins import get_registry
    from snnjax_plugins import network as net

    rule = get_registry().create("rule", "segment-supervised", n_classes=3)
    cfg = net.thesis_config(t_present_ms=80.0, t_rest_ms=20.0)
    ds = data.load("mnist-embedded", "test", limit=4)
    x = jnp.asarray(ds.images.reshape(4, -1))
    state = net.init_network(jax.random.PRNGKey(3), cfg, rule)
    key = jax.random.PRNGKey(4)
    s_ref, o_ref = jax.jit(lambda st: net.present_many(st, x, key, cfg, rule, learn=0.0, fixed_v2_mv=-52.0))(state)
    s_inf, o_inf = jax.jit(lambda st: net.present_many(st, x, key, cfg, rule, fixed_v2_mv=-52.0, plastic=False))(state)
    assert int(o_ref.exc_counts.sum()) > 0
    np.testing.assert_array_equal(np.asarray(o_inf.exc_counts), np.asarray(o_ref.exc_counts))
    np.testing.assert_array_equal(np.asarray(o_inf.inh_counts), np.asarray(o_ref.inh_counts))
    np.testing.assert_allclose(np.asarray(s_inf.exc.v), np.asarray(s_ref.exc.v), atol=1e-3)
    np.testing.assert_array_equal(np.asarray(s_inf.w), np.asarray(state.w))
    assert int(o_inf.dropped_events.sum()) == 0


def test_batch_any_is_the_or_over_the_mapped_axis():
    from snnjax_plugins.network import batch_any

    flags = jnp.asarray([False, True, False])
    assert bool(batch_any(jnp.asarray(True))) and not bool(batch_any(jnp.asarray(False)))
    np.testing.assert_array_equal(jax.vmap(batch_any)(flags), [True, True, True])
    np.testing.assert_array_equal(jax.vmap(batch_any)(flags & False), [False, False, False])
    np.testing.assert_array_equal(jax.vmap(jax.vmap(batch_any))(jnp.stack([flags, flags & False])), [[True] * 3] * 2)
    # the predicate is unbatched, so a cond on it stays a branch under vmap (no select of both branches)
    f = lambda b, x: jax.lax.cond(batch_any(b), lambda y: y + 1.0, lambda y: y, x)  # noqa: E731
    jaxpr = str(jax.make_jaxpr(jax.vmap(f))(flags, jnp.zeros(3)))
    assert "cond[" in jaxpr and "select_n" not in jaxpr


@pytest.mark.parametrize("vmapped", [False, True])
def test_input_chunks_do_not_change_the_dynamics(vmapped):
    """Chunked processing of the per-step input list (skipping empty chunks) = one chunk of length k_in."""
    rule = stdp_dc15()
    base = dataclasses.replace(DC15, k_in=24)
    raster = _raster(base, 5, 0.02)  # some steps fill several chunks of 3, many fit in one
    counts = np.asarray(raster).sum(1)
    assert counts.max() > 6 and (counts <= 3).mean() > 0.2
    out = []
    for kc in (24, 3):
        cfg = dataclasses.replace(base, k_in_chunk=kc)
        f = lambda s, r: present_raster(s, r, cfg, rule, record=REC)  # noqa: E731
        if vmapped:
            st = jax.vmap(lambda k: init_network(k, cfg, rule))(jax.random.split(jax.random.key(1), 2))
            rasters = jnp.stack([raster, raster[:, ::-1]])
            st, o = jax.jit(jax.vmap(f))(st, rasters)
        else:
            st = init_network(jax.random.key(1), cfg, rule)
            st, o = jax.jit(f)(st, raster)
        assert int(np.asarray(o.dropped_events).sum()) == 0
        out.append((st, o))
    (sa, oa), (sb, ob) = out
    np.testing.assert_array_equal(np.asarray(oa.monitors["exc_spikes"]), np.asarray(ob.monitors["exc_spikes"]))
    np.testing.assert_array_equal(np.asarray(oa.monitors["inh_spikes"]), np.asarray(ob.monitors["inh_spikes"]))
    assert int(np.asarray(oa.exc_counts).sum()) > 0
    # equal up to float rounding (XLA may contract multiply-adds differently for other chunk shapes)
    np.testing.assert_allclose(np.asarray(sa.w), np.asarray(sb.w), atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.asarray(sa.exc.v), np.asarray(sb.exc.v), atol=1e-3, rtol=0)


def test_k_in_chunk_is_validated():
    with pytest.raises(ConfigError, match="k_in_chunk"):
        dataclasses.replace(DC15, k_in_chunk=0)


def _example_plugin():
    """The example third-party package (examples/snnjax-symmetric-stdp), imported from its source tree."""
    import importlib
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "examples" / "snnjax-symmetric-stdp")
    if src not in sys.path:
        sys.path.insert(0, src)
    return importlib.import_module("snnjax_symmetric_stdp")


def test_third_party_rule_declares_its_fast_form_and_it_equals_the_general_path():
    """A plugin's trace rule opts in by declaring a DeferredTrace; chosen by name, it runs the fast path exactly."""
    from snnjax.deferred import DeferredTrace, fast_form
    from snnjax.plugins import build_registry

    mod = _example_plugin()
    reg = build_registry(extra_plugins=[mod], use_entry_points=False)
    rule = reg.create("rule", "symmetric-stdp", amplitude=2e-3)
    assert isinstance(fast_form(rule), DeferredTrace)
    assert fast_form(chain(rule, reg.create("regularizer", "synaptic-scaling"))) is None  # dense per-step: general
    w = jax.random.choice(jax.random.key(4), jnp.asarray([0.0, 0.0002, 0.025, 0.0498, 0.05]), (784, 30))
    a, b = _both(THESIS, rule, _raster(THESIS, 0, 0.03), None, w=w)
    _assert_same(a, b, atol=1e-7)
    assert float(jnp.abs(a[0].w - w).max()) > 1e-3  # it learned


def test_example_regularizer_and_inhibition_by_name():
    """The example package's synaptic-scaling drives column sums to the target; global-wta keeps one winner per step."""
    from snnjax.inhibition import Inhibition
    from snnjax.plasticity import Activity
    from snnjax.plugins import build_registry

    reg = build_registry(extra_plugins=[_example_plugin()], use_entry_points=False)
    scale = reg.create("regularizer", "synaptic-scaling", target=2.0, tau_ms=10.0)
    w = jax.random.uniform(jax.random.key(0), (50, 4)) * jnp.asarray([0.01, 0.05, 0.1, 0.2])
    act = Activity(pre=jnp.zeros(50, bool), post=jnp.zeros(4, bool), dt_ms=1.0)
    s = scale.init(w)
    err0 = np.abs(np.asarray(w.sum(0)) - 2.0)
    for _ in range(100):
        w, s = scale.update(w, s, act)
    assert np.all(np.abs(np.asarray(w.sum(0)) - 2.0) < 1e-3 * err0)
    inhibit = reg.create("inhibition", "global-wta")
    assert isinstance(inhibit, Inhibition)
    pot = jax.random.normal(jax.random.key(1), (3, 2, 4, 4)).at[2].set(-1.0)
    out = np.asarray(inhibit(pot))
    assert [int((o != 0).sum()) for o in out] == [1, 1, 0]
    np.testing.assert_array_equal(out.reshape(3, -1).max(1)[:2], np.asarray(pot).reshape(3, -1).max(1)[:2])
