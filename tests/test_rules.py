"""Learning rules: closed forms of SPEC.md, signs, bounds, event-driven = dense, segments."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snnjax.errors import ConfigError
from snnjax.plasticity import Activity
from snnjax_plugins.rules import all_ltd, segment_gate, segment_supervised, snnjax_learning_rules, stdp, stdp_dc15

DT = 0.1


def run_pair(rule, delta_steps, w0=0.025, n_steps=None):
    """One synapse; pre at step 300, post at 300 + delta_steps. Returns the final weight."""
    n_steps = n_steps or 300 + abs(delta_steps) + 300
    pre = np.zeros((n_steps, 1), bool)
    post = np.zeros((n_steps, 1), bool)
    pre[300, 0] = True
    post[300 + delta_steps, 0] = True
    w = jnp.full((1, 1), w0, jnp.float32)

    def body(c, x):
        w, s = c
        w, s = rule.update(w, s, Activity(pre=x[0], post=x[1], dt_ms=DT))
        return (w, s), None

    (w, _), _ = jax.lax.scan(body, (w, rule.init(w)), (jnp.asarray(pre), jnp.asarray(post)))
    return float(w[0, 0])


@pytest.mark.parametrize("d_ms", [1.0, 10.0, 20.0])
def test_stdp_and_all_ltd_closed_forms(d_ms):
    k = int(round(d_ms / DT))
    a_pre, a_post = 5e-4, -5.25e-4
    # pre before post (Δt > 0): STDP +A_pre e^{-Δt/τ}; All-LTD −A_pre e^{-Δt/τ}
    assert run_pair(stdp(), k) - 0.025 == pytest.approx(a_pre * math.exp(-d_ms / 20), rel=1e-4)
    assert run_pair(all_ltd(), k) - 0.025 == pytest.approx(-a_pre * math.exp(-d_ms / 20), rel=1e-4)
    # post before pre (Δt < 0): A_post e^{Δt/τ} for both
    assert run_pair(stdp(), -k) - 0.025 == pytest.approx(a_post * math.exp(-d_ms / 20), rel=1e-4)
    assert run_pair(all_ltd(), -k) - 0.025 == pytest.approx(a_post * math.exp(-d_ms / 20), rel=1e-4)


def test_same_step_is_pre_before_post():
    assert run_pair(stdp(), 0) == pytest.approx(0.0255, rel=1e-6)


def test_trace_decays_exactly():
    rule = stdp()
    w = jnp.zeros((1, 1))
    s = rule.init(w)
    w, s = rule.update(w, s, Activity(pre=jnp.array([True]), post=jnp.array([False]), dt_ms=DT))
    for _ in range(200):
        w, s = rule.update(w, s, Activity(pre=jnp.array([False]), post=jnp.array([False]), dt_ms=DT))
    assert float(s.apre[0]) == pytest.approx(5e-4 * math.exp(-20 / 20), rel=1e-5)


def test_dc15_pair():
    rule = stdp_dc15()
    # post, then pre 10 ms later: depression ν_pre·e^{-10/20}; pre then post: potentiation ν_post·e^{-10/20}·post2(before)=0
    assert run_pair(rule, -100, w0=0.5) - 0.5 == pytest.approx(-1e-4 * math.exp(-0.5), rel=1e-4)
    assert run_pair(rule, 100, w0=0.5) == pytest.approx(0.5)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rule_name=st.sampled_from(["stdp", "all-ltd", "stdp-dc15", "soft"]))
def test_event_driven_equals_dense_and_bounds(seed, rule_name):
    _ev_vs_dense(rule_name, seed)


_RULES = {"stdp": stdp(), "all-ltd": all_ltd(), "stdp-dc15": stdp_dc15(w_max=0.05), "soft": stdp(bounds="soft", pairing="nearest")}
_RUNNERS = {}


def _ev_vs_dense(rule_name, seed, n_pre=40, n_post=12, T=150):
    rule = _RULES[rule_name]
    rng = np.random.default_rng(seed)
    pre = jnp.asarray(rng.random((T, n_pre)) < 0.15)  # often more than k=3 events: overflow path exercised
    post = jnp.asarray(rng.random((T, n_post)) < 0.2)
    w0 = jnp.asarray(rng.uniform(0, 0.05, (n_pre, n_post)), jnp.float32)
    gate = jnp.asarray(rng.random(n_post) < 0.5, jnp.float32)
    if rule_name not in _RUNNERS:  # compile once per rule, not once per example
        _RUNNERS[rule_name] = jax.jit(lambda w0, pre, post, gate: _run_both(rule, w0, pre, post, gate))
    out = _RUNNERS[rule_name](w0, pre, post, gate)
    (w_ev, _), (w_de, _) = out
    np.testing.assert_allclose(np.asarray(w_ev), np.asarray(w_de), atol=1e-7)
    assert float(w_ev.min()) >= 0 and float(w_ev.max()) <= 0.05 + 1e-7


@jax.jit
def _noop(x):
    return x


def _run_both(rule, w0, pre, post, gate):
    def body(c, x):
        (we, se), (wd, sd) = c
        pr, po = x
        ae = Activity(pre=pr, post=po, dt_ms=DT, gate=gate, pre_idx=jnp.nonzero(pr, size=3, fill_value=pr.shape[0])[0],
                      post_idx=jnp.nonzero(po, size=3, fill_value=po.shape[0])[0])
        ad = Activity(pre=pr, post=po, dt_ms=DT, gate=gate)
        return (rule.update(we, se, ae), rule.update(wd, sd, ad)), None

    c0 = ((w0, rule.init(w0)), (w0, rule.init(w0)))
    return jax.lax.scan(body, c0, (pre, post))[0]


def test_segment_supervised_merged_equals_generic():
    merged = segment_supervised(n_classes=3)
    generic = segment_supervised(n_classes=3, target=stdp(), others=all_ltd())
    rng = np.random.default_rng(1)
    T, n_pre, n_post = 120, 20, 6
    pre = jnp.asarray(rng.random((T, n_pre)) < 0.2)
    post = jnp.asarray(rng.random((T, n_post)) < 0.2)
    w0 = jnp.asarray(rng.uniform(0, 0.05, (n_pre, n_post)), jnp.float32)
    gate = segment_gate(1, n_post, 3, jnp.float32)

    def go(rule):
        def body(c, x):
            return rule.update(*c, Activity(pre=x[0], post=x[1], dt_ms=DT, gate=gate)), None

        return jax.lax.scan(body, (w0, rule.init(w0)), (pre, post))[0][0]

    np.testing.assert_allclose(np.asarray(go(merged)), np.asarray(go(generic)), atol=1e-8)
    # the label's segment (neurons 2, 3) learns by STDP: equal to plain STDP there
    np.testing.assert_allclose(np.asarray(go(merged))[:, 2:4], np.asarray(go(stdp()))[:, 2:4], atol=1e-8)
    np.testing.assert_allclose(np.asarray(go(merged))[:, [0, 1, 4, 5]], np.asarray(go(all_ltd()))[:, [0, 1, 4, 5]], atol=1e-8)


def test_learning_off_keeps_weights():
    rule = stdp()
    w = jnp.full((3, 2), 0.02)
    s = rule.init(w)
    for t in range(20):
        w2, s = rule.update(w, s, Activity(pre=jnp.array([True, t % 2 == 0, False]), post=jnp.array([t % 3 == 0, True]), dt_ms=DT, gain=0.0))
        np.testing.assert_array_equal(np.asarray(w2), np.asarray(w))
    assert float(jnp.abs(s.apre).sum()) > 0


def test_segment_errors():
    with pytest.raises(ConfigError, match="segments"):
        segment_supervised(n_classes=4).init(jnp.zeros((5, 30)))
    with pytest.raises(ConfigError):
        segment_gate(0, 10, 3)
    with pytest.raises(ConfigError):
        stdp(tau_pre_ms=0.0)
    with pytest.raises(ConfigError):
        stdp(w_min=1.0, w_max=0.5)


def test_registered():
    assert set(snnjax_learning_rules()) == {"stdp", "all-ltd", "stdp-dc15", "segment-supervised"}
    from snnjax.plugins import build_registry

    assert {"stdp", "all-ltd", "stdp-dc15", "segment-supervised"} <= set(build_registry().names("rule"))


def test_chain_keeps_named_parts_and_state_is_addressable_by_name():
    from snnjax.plasticity import chain, chain_parts, clip, named_chain, part, part_state, replace_part_state
    from snnjax_plugins.regularizers import find_state, kp_of, set_kp, set_kp_of, use_it_or_lose_it

    rule_a, decay = stdp(), use_it_or_lose_it(tau_prun_ms=50.0)
    named = named_chain(("stdp", rule_a), ("decay", decay), ("bound", clip(0.0, 0.04)))
    assert [n for n, _ in named.parts] == ["stdp", "decay", "bound"] and part(named, "decay") is decay
    assert chain_parts(chain(rule_a, decay)) == (rule_a, decay) and chain_parts(rule_a) is None
    assert [n for n, _ in chain(rule_a, decay).parts] == ["0", "1"]
    w = jnp.full((4, 3), 0.02)
    s = jax.vmap(named.init)(jnp.stack([w, w]))  # batched over 2 seeds
    assert part_state(named, s, "decay").t_s.shape == (2, 4)
    s0 = set_kp_of(named, s, "decay", 0.0)
    assert np.all(np.asarray(kp_of(named, s0, "decay")) == 0.0)
    # the name-based setter equals the type-hunting one it sits beside
    for x, y in zip(jax.tree_util.tree_leaves(s0), jax.tree_util.tree_leaves(set_kp(s, 0.0))):
        np.testing.assert_array_equal(x, y)
    assert find_state(s0) is part_state(named, s0, "decay")
    s1 = replace_part_state(named, s0, "stdp", "marker")
    assert s1[0] == "marker" and s1[1] is s0[1] and s1[2] is s0[2]
    with pytest.raises(ConfigError, match="no part named 'nope'.*stdp"):
        part_state(named, s, "nope")
    with pytest.raises(ConfigError, match="distinct"):
        named_chain(("a", rule_a), ("a", decay))


def test_fast_form_is_declared_on_the_value():
    """The fast path is a declared capability (a field of the rule); no side tables, no import cycle."""
    import ast
    from pathlib import Path

    from snnjax.deferred import DeferredRowDecay, DeferredTrace, TraceThenRowDecay
    from snnjax.plasticity import LearningRule, chain
    from snnjax_plugins.regularizers import use_it_or_lose_it

    r = stdp()
    assert isinstance(r.fast, DeferredTrace) and isinstance(stdp_dc15().fast, DeferredTrace)
    assert stdp(bounds="soft").fast is None
    assert isinstance(use_it_or_lose_it().fast, DeferredRowDecay)
    assert use_it_or_lose_it(semantics="continuous").fast is None
    assert isinstance(chain(r, use_it_or_lose_it()).fast, TraceThenRowDecay)
    # the same functions without the declaration: no fast form (nothing is looked up by identity)
    assert LearningRule(r.init, r.update, r.prepare).fast is None
    root = Path(__file__).resolve().parents[1]
    imports = {}
    for rel in ("plugins/rules.py", "plugins/regularizers.py", "snnjax/plasticity.py", "snnjax/deferred.py"):
        text = (root / rel).read_text()
        assert "weakref" not in text, rel
        mods = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom):
                mods.add(("." * node.level) + (node.module or ""))
        imports[rel] = mods
    assert not any("regularizers" in m for m in imports["plugins/rules.py"])
    assert not any("rules" in m for m in imports["plugins/regularizers.py"])
