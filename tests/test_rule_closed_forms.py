"""Closed forms of the trace rule's options: τ_pre ≠ τ_post, soft bounds, nearest-spike pairing.

One synapse with hand-placed pre and post spikes; the final weight is compared with the closed form
``Δw = Σ A e^{-|Δt|/τ}`` of the pairs the option takes into account (SPEC.md). Both the dense form
(``pre``/``post`` masks) and the event form (``pre_idx``/``post_idx`` lists) of the rule are run.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.plasticity import Activity
from snnjax_plugins.rules import all_ltd, stdp

DT = 0.1
A_PRE, A_POST = 5e-4, -5.25e-4


def run_spikes(rule, pre_steps, post_steps, w0, events: bool, n_steps=1200):
    """Final weight of one synapse with pre spikes at ``pre_steps`` and post spikes at ``post_steps``."""
    pre = np.zeros((n_steps, 1), bool)
    post = np.zeros((n_steps, 1), bool)
    pre[list(pre_steps), 0] = True
    post[list(post_steps), 0] = True
    w = jnp.full((1, 1), w0, jnp.float32)

    def body(c, x):
        w, s = c
        p, q = x
        if events:
            act = Activity(pre=p, post=q, dt_ms=DT, pre_idx=jnp.where(p, 0, 1)[:1], post_idx=jnp.where(q, 0, 1)[:1],
                           idx_complete=True)
        else:
            act = Activity(pre=p, post=q, dt_ms=DT)
        w, s = rule.update(w, s, act)
        return (w, s), None

    (w, _), _ = jax.lax.scan(body, (w, rule.init(w)), (jnp.asarray(pre), jnp.asarray(post)))
    return float(w[0, 0])


@pytest.fixture(params=[False, True], ids=["dense", "events"])
def events(request):
    return request.param


def test_pre_and_post_traces_decay_with_their_own_time_constants(events):
    """τ_pre = 10 ms, τ_post = 40 ms: pre→post by 10 ms gives A_pre e^{-10/10}; post→pre by 10 ms A_post e^{-10/40}."""
    rule = stdp(tau_pre_ms=10.0, tau_post_ms=40.0)
    k = 100  # 10 ms
    w0 = 0.025
    ltp = run_spikes(rule, [300], [300 + k], w0, events) - w0
    ltd = run_spikes(rule, [300 + k], [300], w0, events) - w0
    assert ltp == pytest.approx(A_PRE * math.exp(-10 / 10), rel=1e-4)
    assert ltd == pytest.approx(A_POST * math.exp(-10 / 40), rel=1e-4)
    # and swapped: the two constants are not interchangeable
    swapped = stdp(tau_pre_ms=40.0, tau_post_ms=10.0)
    assert run_spikes(swapped, [300], [300 + k], w0, events) - w0 == pytest.approx(A_PRE * math.exp(-10 / 40), rel=1e-4)
    assert run_spikes(swapped, [300 + k], [300], w0, events) - w0 == pytest.approx(A_POST * math.exp(-10 / 10), rel=1e-4)


@pytest.mark.parametrize("w0", [0.01, 0.04])
def test_soft_bounds_scale_potentiation_by_headroom_and_depression_by_weight(w0, events):
    """Soft bounds: Δw⁺ = A⁺ e^{-Δt/τ} (w_max − w)/(w_max − w_min); Δw⁻ = A⁻ e^{-Δt/τ} (w − w_min)/(w_max − w_min)."""
    w_min, w_max = 0.0, 0.05
    span = w_max - w_min
    rule = stdp(bounds="soft", w_min=w_min, w_max=w_max)
    k = 100
    ltp = run_spikes(rule, [300], [300 + k], w0, events) - w0
    ltd = run_spikes(rule, [300 + k], [300], w0, events) - w0
    decay = math.exp(-10 / 20)
    assert ltp == pytest.approx(A_PRE * decay * (w_max - w0) / span, rel=1e-4)
    assert ltd == pytest.approx(A_POST * decay * (w0 - w_min) / span, rel=1e-4)
    # All-LTD's on_post depression (lr2 = −1) is scaled by the weight as well
    ltd2 = run_spikes(all_ltd(bounds="soft", w_min=w_min, w_max=w_max), [300], [300 + k], w0, events) - w0
    assert ltd2 == pytest.approx(-A_PRE * decay * (w0 - w_min) / span, rel=1e-4)


def test_soft_bounds_with_a_nonzero_lower_bound(events):
    w_min, w_max, w0 = 0.01, 0.05, 0.02
    rule = stdp(bounds="soft", w_min=w_min, w_max=w_max)
    ltp = run_spikes(rule, [300], [400], w0, events) - w0
    ltd = run_spikes(rule, [400], [300], w0, events) - w0
    decay = math.exp(-10 / 20)
    assert ltp == pytest.approx(A_PRE * decay * (w_max - w0) / (w_max - w_min), rel=1e-4)
    assert ltd == pytest.approx(A_POST * decay * (w0 - w_min) / (w_max - w_min), rel=1e-4)


def test_nearest_pairing_counts_only_the_last_spike(events):
    """Pre at 0 and 5 ms, post at 15 ms: all-to-all adds both pairs, nearest only the 10 ms pair;
    posts at 0 and 5 ms, pre at 15 ms: likewise for depression."""
    w0 = 0.025
    t = lambda ms: 200 + int(round(ms / DT))  # noqa: E731
    near, all_ = stdp(pairing="nearest"), stdp(pairing="all-to-all")
    e10, e15 = math.exp(-10 / 20), math.exp(-15 / 20)
    assert run_spikes(near, [t(0), t(5)], [t(15)], w0, events) - w0 == pytest.approx(A_PRE * e10, rel=1e-4)
    assert run_spikes(all_, [t(0), t(5)], [t(15)], w0, events) - w0 == pytest.approx(A_PRE * (e10 + e15), rel=1e-4)
    assert run_spikes(near, [t(15)], [t(0), t(5)], w0, events) - w0 == pytest.approx(A_POST * e10, rel=1e-4)
    assert run_spikes(all_, [t(15)], [t(0), t(5)], w0, events) - w0 == pytest.approx(A_POST * (e10 + e15), rel=1e-4)
