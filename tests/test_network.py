"""The network engine: vmap over seeds, event-driven = dense, overflow exactness, repeat rule, validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.errors import ConfigError, InputError
from snnjax.plasticity import LearningRule
from snnjax_plugins.network import dc15_config, init_network, present, present_many, present_raster, thesis_config
from snnjax_plugins.rules import segment_gate, segment_supervised, stdp_dc15


def _image(seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, 784).astype(np.float32)
    img[img < 180] = 0
    return img


SHORT_T = thesis_config(t_present_ms=40.0, t_rest_ms=10.0, max_rate_hz=400.0)
SHORT_D = dc15_config(20, t_present_ms=60.0, t_rest_ms=10.0, max_rate_hz=300.0)


def _dense_rule(rule):
    """The same rule, fed without index lists: its dense masked path."""

    def update(w, s, a):
        return rule.update(w, s, a._replace(pre_idx=None, post_idx=None))

    return LearningRule(rule.init, update, rule.prepare)


@pytest.mark.parametrize("cfg,rule", [(SHORT_T, segment_supervised(n_classes=3)), (SHORT_D, stdp_dc15())])
def test_event_driven_equals_dense(cfg, rule):
    key = jax.random.key(3)
    st = init_network(key, cfg, rule)
    raster = jax.random.uniform(jax.random.key(5), (cfg.steps_present, 784)) < jnp.asarray(_image() / 255 * 0.05)
    gate = segment_gate(1, cfg.n_exc, 3 if cfg.n_exc % 3 == 0 else 1)
    rec = ("exc_spikes", "inh_spikes")
    f = jax.jit(lambda s, r, rule: present_raster(s, r, cfg, rule, gate=gate, record=rec), static_argnums=2)
    s1, o1 = f(st, raster, rule)
    s2, o2 = f(st, raster, _dense_rule(rule))
    assert int(o1.exc_counts.sum()) > 0
    np.testing.assert_array_equal(np.asarray(o1.monitors["exc_spikes"]), np.asarray(o2.monitors["exc_spikes"]))
    np.testing.assert_array_equal(np.asarray(o1.monitors["inh_spikes"]), np.asarray(o2.monitors["inh_spikes"]))
    np.testing.assert_allclose(np.asarray(s1.w), np.asarray(s2.w), atol=1e-7)


def test_small_event_lists_count_what_they_drop():
    # k_in = 1, k_post = 1, k_inh = 1: events beyond the lists are not processed but counted
    rule = segment_supervised(n_classes=3)
    tiny = thesis_config(t_present_ms=40.0, t_rest_ms=10.0, max_rate_hz=400.0, k_in=1, k_post=1, k_inh=1,
                         plasticity="reference")
    st = init_network(jax.random.key(0), SHORT_T, rule)
    raster = jax.random.uniform(jax.random.key(1), (SHORT_T.steps_present, 784)) < jnp.asarray(_image() / 255 * 0.05)
    _, o1 = jax.jit(lambda s, r: present_raster(s, r, SHORT_T, rule))(st, raster)
    _, o2 = jax.jit(lambda s, r: present_raster(s, r, tiny, rule))(st, raster)
    assert int(o1.dropped_events.sum()) == 0
    want = int(np.maximum(np.asarray(raster).sum(1) - 1, 0).sum())
    assert int(o2.dropped_events[0]) == want > 0


def test_vmap_over_seeds_equals_single_runs():
    cfg, rule = SHORT_D, stdp_dc15()
    img = jnp.asarray(_image(1))

    def run(key):
        st = init_network(key, cfg, rule)
        st, out = present(st, img, key, cfg, rule)
        return st.w, out.exc_counts, out.n_presentations

    keys = jax.random.split(jax.random.key(7), 3)
    f = jax.jit(run)
    wb, cb, nb = jax.jit(jax.vmap(run))(keys)
    for i in range(3):
        w, c, n = f(keys[i])
        np.testing.assert_array_equal(np.asarray(c), np.asarray(cb[i]))
        assert int(n) == int(nb[i])
        # spikes are identical; weights may differ in the last bit (XLA sums a batched column in another order)
        np.testing.assert_allclose(np.asarray(w), np.asarray(wb[i]), rtol=1e-6, atol=1e-9)


def test_repeat_rule_on_blank_image():
    cfg = dc15_config(10, t_present_ms=10.0, t_rest_ms=5.0, max_repeats=3)
    rule = stdp_dc15()
    st = init_network(jax.random.key(0), cfg, rule)
    st, out = jax.jit(lambda s: present(s, jnp.zeros(784), jax.random.key(1), cfg, rule))(st)
    assert int(out.n_presentations) == 4 and int(out.exc_counts.sum()) == 0


def test_normalisation_and_sparse_input_rate():
    cfg = dc15_config(10, t_present_ms=200.0, t_rest_ms=0.0, min_spikes=0)
    rule = LearningRule(lambda w: (), lambda w, s, a: (w, s))
    st = init_network(jax.random.key(0), cfg, rule)
    img = jnp.asarray(_image(2))
    # count input spikes through a recording rule: sum of activity.pre over the presentation
    counter = LearningRule(lambda w: jnp.zeros((784,), jnp.int32), lambda w, s, a: (w, s + a.pre))
    st = st._replace(rule_state=counter.init(st.w))
    st2, out = jax.jit(lambda s: present(s, img, jax.random.key(2), cfg, counter))(st)
    np.testing.assert_allclose(np.asarray(st2.w.sum(0)), 78.0, rtol=1e-5)
    want = float(img.sum()) / 255 * 63.75 * 0.2
    got = float(st2.rule_state.sum())
    assert abs(got - want) < 5 * np.sqrt(want)
    assert int(out.dropped_events.sum()) == 0


def test_present_many_and_no_recompile():
    cfg, rule = SHORT_D, stdp_dc15()
    st = init_network(jax.random.key(0), cfg, rule)
    imgs = jnp.asarray(np.stack([_image(i) for i in range(3)]))
    f = jax.jit(lambda s, x, k: present_many(s, x, k, cfg, rule))
    st, out = f(st, imgs, jax.random.key(1))
    st, out = f(st, imgs[::-1], jax.random.key(2))
    assert f._cache_size() == 1
    assert out.exc_counts.shape == (3, 20)


def test_input_validation():
    cfg, rule = SHORT_D, stdp_dc15()
    st = init_network(jax.random.key(0), cfg, rule)
    for bad in (np.full(784, np.nan), -np.ones(784), np.ones(100)):
        with pytest.raises(InputError):
            present(st, bad, jax.random.key(0), cfg, rule)
    with pytest.raises(InputError):
        present_raster(st, np.zeros((5, 100), bool), cfg, rule)
    with pytest.raises(ConfigError):
        thesis_config(dt_ms=0.0)
    with pytest.raises(ConfigError):
        dc15_config(10, k_in=0)
