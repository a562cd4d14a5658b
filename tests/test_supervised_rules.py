"""``segment-oja`` (plugins/supervised_rules.py): hand-made steps, and selection by name with parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.config import resolve
from snnjax.errors import ConfigError, SnnjaxError
from snnjax.plasticity import Activity
from snnjax.plugins import get_registry
from snnjax_plugins.experiments.supervised_stdp import DEFAULTS, build_model, validate
from snnjax_plugins.supervised_rules import segment_oja, segment_template

# 3 inputs, 4 neurons in 2 segments ({0, 1}, {2, 3}); the label's segment is {0, 1}
GATE = jnp.array([1.0, 1.0, 0.0, 0.0])


def _step(rule, w, pre, post, gain=1.0, gate=GATE):
    act = Activity(pre=jnp.array(pre), post=jnp.array(post), gain=gain, gate=gate)
    w_new, _ = rule.update(jnp.asarray(w, jnp.float32), rule.init(jnp.asarray(w, jnp.float32)), act)
    return np.asarray(w_new)


def test_one_step_by_hand():
    rule = segment_oja(n_classes=2, eta_pre=0.01, eta_post=0.1, eta_other=0.5, w_max=1.0)
    w = np.full((3, 4), 0.5)
    out = _step(rule, w, pre=[True, False, False], post=[False, True, False, True])
    expected = np.full((3, 4), 0.5)
    expected[0, :2] = 0.51  # input 0 spiked: the label's synapses gain eta_pre
    expected[0, 2:] = 0.25  # ... and the other segment's lose half (eta_other)
    expected[:, 1] *= 0.9  # neuron 1 (label's segment) spiked: all its inputs shrink by eta_post
    # neuron 3 spiked too but is not in the label's segment: its column keeps the on_pre change only
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.skipif("idx_complete" not in Activity._fields, reason="this plasticity API has no idx_complete")
def test_event_lists_give_the_dense_result():
    rule = segment_oja(n_classes=2, eta_pre=0.01, eta_post=0.1, eta_other=0.5, w_max=1.0)
    w = jnp.asarray(np.random.default_rng(2).uniform(0, 1, (5, 4)), jnp.float32)
    pre = jnp.array([True, False, True, False, False])
    post = jnp.array([False, True, False, True])
    dense, _ = rule.update(w, (), Activity(pre=pre, post=post, gate=GATE))
    listed, _ = rule.update(w, (), Activity(pre=pre, post=post, gate=GATE, pre_idx=jnp.array([0, 2, 5, 5]),
                                            idx_complete=True))  # padded with n_pre = 5
    np.testing.assert_allclose(np.asarray(listed), np.asarray(dense), rtol=1e-6)


def test_no_change_without_spikes_or_at_zero_gain():
    rule = segment_oja(n_classes=2)
    w = np.random.default_rng(0).uniform(0, 0.05, (3, 4))
    np.testing.assert_array_equal(_step(rule, w, [False] * 3, [False] * 4), w.astype(np.float32))
    np.testing.assert_array_equal(_step(rule, w, [True] * 3, [True] * 4, gain=0.0), w.astype(np.float32))


def test_bounds_hold():
    rule = segment_oja(n_classes=2, eta_pre=0.02, w_max=0.05)
    out = _step(rule, np.full((3, 4), 0.045), pre=[True, True, True], post=[False] * 4)
    np.testing.assert_array_equal(out[:, :2], np.float32(0.05))  # clipped at w_max
    np.testing.assert_array_equal(out[:, 2:], np.float32(0.045))  # eta_other = 0: the others keep their weights


def test_repeated_label_images_converge_to_a_normalised_template():
    """Inputs 0 and 1 spike (at rates 2:1), input 2 never; the neuron fires in proportion to its drive.

    The Oja fixed point: weights ∝ the input rates, the same norm whatever the rates' scale.
    """
    rule = segment_oja(n_classes=1, eta_pre=1e-3, eta_post=2e-2, w_max=10.0)
    norms = []
    for scale in (1.0, 3.0):
        rates = jnp.array([0.2, 0.1, 0.0]) * scale

        def step(w, key):
            k_pre, k_post = jax.random.split(key)
            pre = jax.random.uniform(k_pre, (3,)) < rates
            post = jax.random.uniform(k_post, (1,)) < jnp.minimum(rates @ w[:, 0], 1.0)
            return rule.update(w, (), Activity(pre=pre, post=post, gate=None))[0], None

        w, _ = jax.lax.scan(step, jnp.full((3, 1), 0.2, jnp.float32), jax.random.split(jax.random.PRNGKey(1), 6000))
        w = np.asarray(w[:, 0])
        assert w[2] < 0.01 * w[0]  # the silent input's weight has decayed away
        assert w[0] / w[1] == pytest.approx(2.0, rel=0.25)  # ∝ the rates
        norms.append(np.linalg.norm(w))
    assert norms[0] == pytest.approx(norms[1], rel=0.25)  # 3× the rates, about the same norm


def test_selectable_by_name_with_parameters():
    reg = get_registry()
    assert "segment-oja" in reg.names("rule")
    rule = reg.create("rule", "segment-oja", n_classes=2, eta_pre=0.02, w_max=1.0)
    out = _step(rule, np.zeros((3, 4)), pre=[True, False, False], post=[False] * 4)
    np.testing.assert_allclose(out[0], [0.02, 0.02, 0.0, 0.0])
    # from the experiment's config keys: rule and rule_params (n_classes filled in from the experiment)
    cfg = resolve(DEFAULTS, ("--set", {"rule": "segment-oja", "rule_params": "{'eta_pre': 0.03, 'w_max': 1.0}",
                                       "n_classes": 2, "n_exc": 4}))
    validate(cfg)
    _, rule = build_model(cfg, reg)
    out = _step(rule, np.zeros((3, 4)), pre=[True, False, False], post=[False] * 4)
    np.testing.assert_allclose(out[0], [0.03, 0.03, 0.0, 0.0])
    with pytest.raises(SnnjaxError, match="no parameter 'eta'"):
        build_model(resolve(DEFAULTS, ("--set", {"rule": "segment-oja", "rule_params": "{'eta': 1}"})), reg)


@pytest.mark.parametrize("bad, match", [({"eta_post": 1.0}, "must be < 1"), ({"eta_pre": -1e-4}, "≥ 0"),
                                        ({"w_min": 0.1, "w_max": 0.05}, "w_min < w_max"), ({"n_classes": 0}, "positive")])
def test_bad_parameters_are_refused(bad, match):
    with pytest.raises(ConfigError, match=match):
        segment_oja(**bad)


def test_rule_params_are_checked_by_the_experiment():
    with pytest.raises(ConfigError, match="rule_params"):
        validate(resolve(DEFAULTS, ("--set", {"rule_params": "{'eta_pre': 1e-4}"})))  # the thesis' rule takes none
    with pytest.raises(ConfigError, match="rule_params"):
        validate(resolve(DEFAULTS, ("--set", {"rule": "segment-oja", "rule_params": "[1, 2]"})))
    with pytest.raises(ConfigError, match="segments"):
        segment_oja(n_classes=3).init(jnp.zeros((3, 4)))


# --------------------------------------------------------------------------------------------
# segment-template: label-taught spike counts held at a per-neuron L2 norm
# --------------------------------------------------------------------------------------------


def _random_steps(n_steps=40, n_pre=6, seed=3):
    """Random input spikes; the label is segment {0, 1} for the first half, {2, 3} after."""
    rng = np.random.default_rng(seed)
    pre = rng.random((n_steps, n_pre)) < 0.4
    gates = np.where(np.arange(n_steps)[:, None] < n_steps // 2, [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0])
    return pre, gates


def _padded(pre_row):
    idx = np.nonzero(pre_row)[0]
    return jnp.asarray(np.concatenate([idx, np.full(len(pre_row) - len(idx), len(pre_row))]), jnp.int32)


def test_template_weights_are_the_label_counts_at_each_neurons_norm():
    rule = segment_template(n_classes=2, norm=1.0, spread=0.5, eta_wrong=0.0)
    pre, gates = _random_steps()
    w0 = jnp.asarray(np.random.default_rng(0).uniform(0, 0.05, (6, 4)), jnp.float32)
    w, state = w0, rule.init(w0)
    counts = np.zeros((6, 4))
    for t in range(len(pre)):
        w, state = rule.update(w, state, Activity(pre=jnp.asarray(pre[t]), post=jnp.zeros(4, bool),
                                                  gate=jnp.asarray(gates[t], jnp.float32)))
        counts += pre[t][:, None] * gates[t][None, :]
        if t == 0:  # the other segment has not been taught yet: it keeps its initial weights
            np.testing.assert_array_equal(np.asarray(w[:, 2:]), np.asarray(w0[:, 2:]))
    norms = np.array([0.5, 1.5, 0.5, 1.5])  # norm·(1 ∓ spread) over each segment's two neurons
    expected = norms * counts / np.linalg.norm(counts, axis=0)
    np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(w), axis=0), norms, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(state), np.linalg.norm(counts, axis=0), rtol=1e-5)


@pytest.mark.parametrize("params", [{"eta_wrong": 0.0}, {"eta_wrong": 1.0}, {"count_on": "post", "eta_wrong": 0.5}])
def test_template_event_lists_give_the_dense_result(params):
    rule = segment_template(n_classes=2, norm=0.3, spread=0.2, **params)
    pre, gates = _random_steps(seed=5)
    post = np.random.default_rng(6).random((len(pre), 4)) < 0.2
    w0 = jnp.asarray(np.random.default_rng(1).uniform(0, 0.05, (6, 4)), jnp.float32)
    dense, listed = (w0, rule.init(w0)), (w0, rule.init(w0))
    for t in range(len(pre)):
        gate = jnp.asarray(gates[t], jnp.float32)
        dense = rule.update(*dense, Activity(pre=jnp.asarray(pre[t]), post=jnp.asarray(post[t]), gate=gate))
        listed = rule.update(*listed, Activity(pre=jnp.asarray(pre[t]), post=jnp.asarray(post[t]), gate=gate,
                                               pre_idx=_padded(pre[t]), idx_complete=True))
    assert not np.allclose(np.asarray(dense[0]), np.asarray(w0))  # something was learned
    np.testing.assert_allclose(np.asarray(listed[0]), np.asarray(dense[0]), rtol=1e-5, atol=1e-7)
    for a, b in zip(jax.tree_util.tree_leaves(listed[1]), jax.tree_util.tree_leaves(dense[1])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5)


def test_template_no_change_at_zero_gain_or_without_input():
    rule = segment_template(n_classes=2, eta_wrong=0.5)
    w = jnp.asarray(np.random.default_rng(0).uniform(0, 0.05, (3, 4)), jnp.float32)
    for act in (Activity(pre=jnp.ones(3, bool), post=jnp.ones(4, bool), gain=0.0, gate=GATE),
                Activity(pre=jnp.zeros(3, bool), post=jnp.zeros(4, bool), gate=GATE)):
        out, _ = rule.update(w, rule.init(w), act)
        np.testing.assert_array_equal(np.asarray(out), np.asarray(w))


def test_template_wrong_spike_removes_the_trace_from_that_neurons_count():
    tau, dt = 10.0, 0.1
    rule = segment_template(n_classes=2, norm=1.0, spread=0.0, eta_wrong=0.5, tau_pre_ms=tau)
    w = jnp.zeros((3, 4), jnp.float32)
    state = rule.init(w)
    teach = [(GATE, [True, True, False]), (1 - GATE, [True, True, True]), (1 - GATE, [False, True, False])]
    counts = np.zeros((3, 4))
    for gate, pre in teach:  # both segments learn counts
        w, state = rule.update(w, state, Activity(pre=jnp.array(pre), post=jnp.zeros(4, bool), gate=gate, dt_ms=dt))
        counts += np.array(pre)[:, None] * np.asarray(gate)[None, :]
    # the presynaptic trace after the three steps: decays by exp(−dt/τ) each step, +1 per spike
    trace = np.array([np.exp(-2 * dt / tau) + np.exp(-dt / tau), np.exp(-2 * dt / tau) + np.exp(-dt / tau) + 1,
                      np.exp(-dt / tau)])
    # label {0, 1}; neuron 2 (other segment) and neuron 0 (label's) spike, with no input this step
    w, state = rule.update(w, state, Activity(pre=jnp.zeros(3, bool), post=jnp.array([True, False, True, False]),
                                              gate=GATE, dt_ms=dt))
    trace = trace * np.exp(-dt / tau)
    expected_counts = counts.copy()
    expected_counts[:, 2] = np.maximum(counts[:, 2] - 0.5 * trace, 0)  # only the wrong neuron's count drops
    expected = expected_counts / np.linalg.norm(expected_counts, axis=0)
    np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(state[1]), trace, rtol=1e-5)


def test_template_selectable_by_name_and_checked():
    reg = get_registry()
    assert "segment-template" in reg.names("rule")
    cfg = resolve(DEFAULTS, ("--set", {"rule.name": "segment-template", "rule.norm": 2.0, "rule.spread": 0.0,
                                       "n_classes": 2, "n_exc": 4}))
    validate(cfg)
    _, rule = build_model(cfg, reg)
    out, _ = rule.update(jnp.zeros((3, 4)), rule.init(jnp.zeros((3, 4))),
                         Activity(pre=jnp.array([True, False, False]), post=jnp.zeros(4, bool), gate=GATE))
    np.testing.assert_allclose(np.asarray(out[0]), [2.0, 2.0, 0.0, 0.0], rtol=1e-6)
    for bad, match in (({"norm": 0.0}, "norm"), ({"spread": 1.0}, "spread"), ({"eta_wrong": -1.0}, "eta_wrong"),
                       ({"eta_wrong": 1.0, "tau_pre_ms": 0.0}, "tau_pre_ms"),
                       ({"count_on": "both"}, "count_on")):
        with pytest.raises(ConfigError, match=match):
            segment_template(**bad)
    with pytest.raises(ConfigError, match="segments"):
        segment_template(n_classes=3).init(jnp.zeros((3, 4)))


def test_template_count_on_post_counts_the_trace_at_the_neurons_own_spikes():
    tau, dt = 20.0, 0.1
    rule = segment_template(n_classes=2, norm=1.0, spread=0.0, count_on="post", tau_pre_ms=tau)
    w0 = jnp.asarray(np.random.default_rng(4).uniform(0, 0.05, (3, 4)), jnp.float32)
    w, state = w0, rule.init(w0)
    d = np.exp(-dt / tau)
    # step 1: inputs 0 and 2 spike, no neuron does: nothing is counted, the initial weights stay
    w, state = rule.update(w, state, Activity(pre=jnp.array([True, False, True]), post=jnp.zeros(4, bool),
                                              gate=GATE, dt_ms=dt))
    np.testing.assert_array_equal(np.asarray(w), np.asarray(w0))
    # step 2: input 1 spikes; neuron 1 (label's segment) and neuron 3 (the other segment, nothing counted yet) spike
    w, state = rule.update(w, state, Activity(pre=jnp.array([False, True, False]),
                                              post=jnp.array([False, True, False, True]), gate=GATE, dt_ms=dt))
    trace = np.array([d, 1.0, d])
    expected = np.asarray(w0).copy()
    expected[:, 1] = trace / np.linalg.norm(trace)  # the count replaces neuron 1's initial weights
    np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-5)
    # step 3: neuron 1 spikes again with no input: its count adds the decayed trace
    w, state = rule.update(w, state, Activity(pre=jnp.zeros(3, bool), post=jnp.array([False, True, False, False]),
                                              gate=GATE, dt_ms=dt))
    counts = trace + trace * d
    expected[:, 1] = counts / np.linalg.norm(counts)
    np.testing.assert_allclose(np.asarray(w), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(state[0])[1], np.linalg.norm(counts), rtol=1e-5)
