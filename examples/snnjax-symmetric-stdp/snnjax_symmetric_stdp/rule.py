r"""Symmetric STDP: potentiation for both spike orders, with its declared fast form.

.. math::

    \Delta w(\Delta t) = +A\,\exp(-|\Delta t|/\tau)

implemented with one presynaptic and one postsynaptic trace per neuron, each
decaying exactly by :math:`e^{-dt/\tau}` per step and incremented by 1 on a
spike, in Brian 2's order (every on_pre before every on_post; each clipped to
``[0, w_max]`` at once; a pre and a post spike in one step count once):

* on a presynaptic spike of ``i``:  ``x_pre[i] += 1``; ``w[i, :] ← clip(w[i, :] + A·gain·x_post)``
* on a postsynaptic spike of ``j``: ``x_post[j] += 1``; ``w[:, j] ← clip(w[:, j] + A·gain·x_pre)``

Every increment is ≥ 0 and ``x_pre`` only decays between two spikes of its
input, which is what the deferred (fast) path needs: the rule declares it with
:class:`SymmetricForm`, a :class:`snnjax.deferred.DeferredTrace`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Float

from snnjax.deferred import DeferredTrace
from snnjax.plasticity import Activity, LearningRule


class SymmetricState(NamedTuple):
    """Traces (dimensionless): ``x_pre[n_pre]``, ``x_post[n_post]``."""

    x_pre: Float[Array, " n_pre"]
    x_post: Float[Array, " n_post"]


def _decay(dt_ms: float, tau_ms: float, dtype):
    """``e^{−dt/τ}`` in ``dtype`` (double precision first when ``dt`` is a Python number)."""
    if isinstance(dt_ms, (int, float)):
        return jnp.asarray(math.exp(-dt_ms / tau_ms), dtype)
    return jnp.exp(-jnp.asarray(dt_ms, dtype) / jnp.asarray(tau_ms, dtype))


@dataclasses.dataclass(frozen=True)
class SymmetricForm(DeferredTrace):
    """The deferred form of :func:`symmetric_stdp`: what the network's fast path asks of the rule."""

    tau_pre_ms: float
    w_min: float
    w_max: float
    amplitude: float

    def split(self, state):
        return state.x_pre, (state.x_post,)

    def join(self, apre, post, decay_state=None):
        return SymmetricState(apre, post[0])

    def rates(self, gain, gate, n_post, dtype):
        lr = jnp.full((n_post,), self.amplitude * jnp.asarray(gain, dtype), dtype)
        return lr, lr

    def decay_post(self, post, dt_ms):
        return (post[0] * _decay(dt_ms, self.tau_pre_ms, post[0].dtype),)

    def pre_value(self, a_now):
        return a_now + jnp.ones((), a_now.dtype)

    def pre_row_delta(self, post, lr_pre):
        return lr_pre * post[0]

    def post_weight(self, post, spikes):
        return spikes.astype(post[0].dtype)

    def post_spike(self, post, spikes):
        return (jnp.where(spikes, post[0] + jnp.ones((), post[0].dtype), post[0]),)


def symmetric_stdp(amplitude: float = 1e-4, tau_ms: float = 20.0, w_max: float = 0.05) -> LearningRule:
    """Symmetric STDP: potentiation for both spike orders, A·exp(-|Δt|/τ) (declares its fast form)."""
    if not (tau_ms > 0 and w_max > 0 and amplitude >= 0):
        raise ValueError("tau_ms and w_max must be positive and amplitude ≥ 0")

    def init(weights):
        n_pre, n_post = weights.shape
        return SymmetricState(jnp.zeros(n_pre, weights.dtype), jnp.zeros(n_post, weights.dtype))

    def update(weights, state: SymmetricState, act: Activity):
        dtype = weights.dtype
        decay = _decay(act.dt_ms, tau_ms, dtype)
        lr = amplitude * jnp.asarray(act.gain, dtype)
        hi = jnp.asarray(w_max, dtype)
        one = jnp.ones((), dtype)
        pre, post = jnp.asarray(act.pre, bool), jnp.asarray(act.post, bool)
        x_pre, x_post = state.x_pre * decay, state.x_post * decay
        x_pre = jnp.where(pre, x_pre + one, x_pre)  # on_pre
        weights = jnp.where(pre[:, None], jnp.clip(weights + lr * x_post[None, :], 0, hi), weights)
        x_post = jnp.where(post, x_post + one, x_post)  # on_post
        weights = jnp.where(post[None, :], jnp.clip(weights + lr * x_pre[:, None], 0, hi), weights)
        return weights, SymmetricState(x_pre, x_post)

    return LearningRule(init, update, fast=SymmetricForm(tau_ms, 0.0, w_max, amplitude))
