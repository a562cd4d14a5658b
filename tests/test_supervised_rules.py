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
from snnjax_plugins.supervised_rules import segment_oja

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
