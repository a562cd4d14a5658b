"""Use it or lose it inside the network, over several images: the weights equal a replay of the original rule.

The original (Brian 2) code, at each presynaptic spike of input ``i`` at time ``t``:
``w ← w·exp(−(k_p·(t − t_pre)/τ)²)``, then ``ge += w``, then the STDP on_pre update
``Apre += a_pre; w ← clip(w + lr1·Apost)``, then ``t_pre ← t``; ``t_pre`` starts at 0
and ``t`` is the global simulated time (it keeps running over images and rests).
On a postsynaptic spike: ``Apost += a_post; w ← clip(w + lr2·Apre)``.

The network runs several presentations with given input rasters (a multi-image
run: onsets, rests, global time) and records its excitatory spikes; a NumPy
replay of the rule above on the same pre and post spikes must give the same
weights. Two networks run as one vmapped batch with ``k_p = 0`` and ``1`` per
network, as in the experiment; a second test runs the authors' schedule (``k_p = 0``
in training, then a flush with learning off at ``k_p = 1``, the experiment's default).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.plasticity import chain
from snnjax_plugins import network as net
from snnjax_plugins.regularizers import set_kp, use_it_or_lose_it
from snnjax_plugins.rules import segment_gate, segment_supervised

N_IN, N_EXC, N_CLASSES = 12, 6, 3
DT = 0.1
TAU = 40.0  # ms: gaps of one presentation (50 ms) decay by a visible factor
A_PRE, A_POST, W_MAX, TAU_TR = 5e-4, -5.25e-4, 0.05, 20.0


def _rasters(rng, n_images, steps):
    """Input rasters: per image, a random half of the inputs fire at 1 % per step; input 11 never fires,
    input 10 only in the first image."""
    out = np.zeros((n_images, steps, N_IN), bool)
    for k in range(n_images):
        active = rng.random(N_IN) < 0.5
        active[11] = False
        active[10] = k == 0
        out[k] = (rng.random((steps, N_IN)) < 0.01) & active[None, :]
    return out


def _replay(w0, pre, post, labels, k_p, steps_total, learn=None):
    """NumPy replay of the original rule over global steps. ``pre``: [T, N_IN], ``post``: [T, N_EXC].

    ``k_p``: a number, or one value per step (the original's schedule: 0 in training, 1 in the flush);
    ``learn``: ``None`` (learning on), or one 0/1 value per step (0: no STDP change, the decay still acts).
    """
    k_p = np.broadcast_to(np.asarray(k_p, np.float64), (pre.shape[0],))
    learn = np.ones(pre.shape[0]) if learn is None else np.asarray(learn, np.float64)
    w = np.array(w0, np.float64)
    apre = np.zeros(N_IN)
    apost = np.zeros(N_EXC)
    t_pre = np.zeros(N_IN)
    d = math.exp(-DT / TAU_TR)
    size = N_EXC // N_CLASSES
    for n in range(pre.shape[0]):
        t = n * DT
        label = labels[n // steps_total]
        lr2 = np.where(np.arange(N_EXC) // size == label, 1.0, -1.0)  # STDP on the label's segment, All-LTD
        apre *= d
        apost *= d
        for i in np.nonzero(pre[n])[0]:
            w[i] *= math.exp(-((k_p[n] * (t - t_pre[i]) / TAU) ** 2))
            apre[i] += A_PRE
            w[i] = np.clip(w[i] + learn[n] * apost, 0.0, W_MAX)
            t_pre[i] = t
        for j in np.nonzero(post[n])[0]:
            apost[j] += A_POST
            w[:, j] = np.clip(w[:, j] + learn[n] * lr2[j] * apre, 0.0, W_MAX)
    return w


def test_network_weights_follow_the_original_rule_over_images():
    cfg = net.thesis_config(n_input=N_IN, n_exc=N_EXC, t_present_ms=30.0, t_rest_ms=20.0, k_in=N_IN, k_post=N_EXC,
                            k_inh=N_EXC, w_init_low=0.03, w_init_high=0.05)
    rule = chain(segment_supervised(n_classes=N_CLASSES), use_it_or_lose_it(tau_prun_ms=TAU, semantics="lazy"))
    n_images = 5
    labels = np.array([0, 1, 2, 0, 1])
    rasters = jnp.asarray(_rasters(np.random.default_rng(3), n_images, cfg.steps_present))
    # strong drive so that the excitatory neurons fire: every input spike adds 0.03–0.05 to ge of all neurons
    rasters_dense = rasters | (jnp.arange(cfg.steps_present)[None, :, None] % 7 == 0) & (jnp.arange(N_IN) < 4)

    def run(key, k_p):
        st = net.init_network(key, cfg, rule)
        st = st._replace(rule_state=set_kp(st.rule_state, k_p))
        w0 = st.w

        def body(s, x):
            raster, label = x
            gate = segment_gate(label, N_EXC, N_CLASSES, s.w.dtype)
            s, out = net.present_raster(s, raster, cfg, rule, learn=1.0, gate=gate, record=("exc_spikes",))
            return s, out.monitors["exc_spikes"]

        st, post = jax.lax.scan(body, st, (rasters_dense, jnp.asarray(labels)))
        return w0, st.w, post, st.step

    keys = jnp.stack([jax.random.PRNGKey(0)] * 2)
    w0, w, post, step = jax.jit(jax.vmap(run))(keys, jnp.asarray([0.0, 1.0]))
    steps_total = cfg.steps_total
    assert int(step[0]) == n_images * steps_total  # the global clock ran over images and rests
    pre = np.zeros((n_images, steps_total, N_IN), bool)
    pre[:, : cfg.steps_present] = np.asarray(rasters_dense)
    pre = pre.reshape(-1, N_IN)
    for b, k_p in enumerate((0.0, 1.0)):
        spikes = np.asarray(post[b]).reshape(-1, N_EXC)
        assert spikes.sum() >= 5  # the neurons fired: STDP acted
        expect = _replay(np.asarray(w0[b]), pre, spikes, labels, k_p, steps_total)
        np.testing.assert_allclose(np.asarray(w[b]), expect, rtol=2e-4, atol=2e-6)
    # the decay acted: input 10 fired only in image 0, input 11 never; k_p = 0 kept both
    np.testing.assert_allclose(np.asarray(w[1, 11]), np.asarray(w0[1, 11]))  # never fired: decay still pending
    assert np.max(np.abs(np.asarray(w[1]) - np.asarray(w[0]))) > 1e-3



def test_original_schedule_prunes_once_at_the_flush():
    """The authors' code: k_p = 0 over the training images (``t_pre`` still stamped at every spike), then
    a flush with learning off and k_p = 1. The network equals the NumPy replay of that schedule, its
    weights before the flush equal the k_p = 0 network's, and the flush prunes each row once by recency."""
    cfg = net.thesis_config(n_input=N_IN, n_exc=N_EXC, t_present_ms=30.0, t_rest_ms=20.0, k_in=N_IN, k_post=N_EXC,
                            k_inh=N_EXC, w_init_low=0.03, w_init_high=0.05)
    flush_cfg = dataclasses.replace(cfg, t_present_ms=5.0, t_rest_ms=0.0)
    rule = chain(segment_supervised(n_classes=N_CLASSES), use_it_or_lose_it(tau_prun_ms=TAU, semantics="lazy"))
    labels = np.array([0, 1, 2, 0, 1])
    rasters = jnp.asarray(_rasters(np.random.default_rng(3), len(labels), cfg.steps_present))
    rasters = rasters | (jnp.arange(cfg.steps_present)[None, :, None] % 7 == 0) & (jnp.arange(N_IN) < 4)
    flush_raster = np.zeros((flush_cfg.steps_present, N_IN), bool)
    flush_raster[np.arange(N_IN) % flush_cfg.steps_present, np.arange(N_IN)] = True  # every input once, staggered
    flush_raster[-1, 0] = True  # input 0 twice: its second flush spike sees a gap of a few ms only

    def run(key, k_p_flush):
        st = net.init_network(key, cfg, rule)
        st = st._replace(rule_state=set_kp(st.rule_state, 0.0))
        w0 = st.w

        def body(s, x):
            raster, label = x
            gate = segment_gate(label, N_EXC, N_CLASSES, s.w.dtype)
            s, out = net.present_raster(s, raster, cfg, rule, learn=1.0, gate=gate, record=("exc_spikes",))
            return s, out.monitors["exc_spikes"]

        st, post = jax.lax.scan(body, st, (rasters, jnp.asarray(labels)))
        trained = st.w
        st = st._replace(rule_state=set_kp(st.rule_state, k_p_flush))
        st, out = net.present_raster(st, jnp.asarray(flush_raster), flush_cfg, rule, learn=0.0,
                                     record=("exc_spikes",))
        return w0, trained, st.w, post, out.monitors["exc_spikes"]

    keys = jnp.stack([jax.random.PRNGKey(0)] * 2)
    w0, trained, flushed, post, post_flush = jax.jit(jax.vmap(run))(keys, jnp.asarray([0.0, 1.0]))
    np.testing.assert_array_equal(np.asarray(trained[0]), np.asarray(trained[1]))  # k_p = 0: the same network
    steps_total = cfg.steps_total
    n_train = len(labels) * steps_total
    pre = np.zeros((len(labels), steps_total, N_IN), bool)
    pre[:, : cfg.steps_present] = np.asarray(rasters)
    pre = np.concatenate([pre.reshape(-1, N_IN), flush_raster])
    k_p = np.r_[np.zeros(n_train), np.ones(len(flush_raster))]
    learn = np.r_[np.ones(n_train), np.zeros(len(flush_raster))]
    spikes = np.concatenate([np.asarray(post[1]).reshape(-1, N_EXC), np.asarray(post_flush[1])])
    assert spikes[:n_train].sum() >= 5  # the neurons fired in training: STDP acted
    expect = _replay(np.asarray(w0[1]), pre, spikes, np.r_[labels, 0], k_p, steps_total, learn)
    np.testing.assert_allclose(np.asarray(flushed[1]), expect, rtol=2e-4, atol=2e-6)
    # without the regularizer the flush (learning off) changes nothing
    np.testing.assert_array_equal(np.asarray(flushed[0]), np.asarray(trained[0]))
    # one-shot pruning by recency: row i × exp(−((t_first − t_last)/τ)²), t_last its last training spike
    t_last = np.array([DT * np.nonzero(pre[:n_train, i])[0].max() if pre[:n_train, i].any() else 0.0
                       for i in range(N_IN)])
    t_first = DT * (n_train + np.argmax(flush_raster, axis=0))
    factor = np.exp(-(((t_first - t_last) / TAU) ** 2))
    factor[0] *= math.exp(-((DT * (len(flush_raster) - 1) / TAU) ** 2))  # input 0's second flush spike
    np.testing.assert_allclose(np.asarray(flushed[1]), np.asarray(trained[1]) * factor[:, None], rtol=2e-3, atol=1e-7)
    assert factor.min() < 0.01 and factor.max() > 0.5  # never-lit inputs vanish, recently lit ones stay
