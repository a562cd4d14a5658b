r"""Symmetric STDP: potentiation for both spike orders (an example snnjax plugin).

.. math::

    \Delta w(\Delta t) = +A\,\exp(-|\Delta t|/\tau)

implemented with one presynaptic and one postsynaptic trace, each decaying
exactly with :math:`\exp(-dt/\tau)` per step and incremented by 1 on a spike:

* on a presynaptic spike of ``i``:  ``w[i, :] += A · gain · x_post``
* on a postsynaptic spike of ``j``: ``w[:, j] += A · gain · x_pre``

then ``w`` is clipped to ``[0, w_max]``. Install with ``pip install -e .`` and
use it by name: ``snnjax run supervised-stdp --set rule=symmetric-stdp``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from snnjax import hookimpl
from snnjax.plasticity import Activity, LearningRule


class SymmetricState(NamedTuple):
    x_pre: jnp.ndarray  #: presynaptic trace, [n_pre]
    x_post: jnp.ndarray  #: postsynaptic trace, [n_post]


def symmetric_stdp(amplitude: float = 1e-4, tau_ms: float = 20.0, w_max: float = 0.05) -> LearningRule:
    """Symmetric STDP: potentiation for both spike orders, A·exp(-|Δt|/τ)."""
    if tau_ms <= 0 or w_max <= 0:
        raise ValueError("tau_ms and w_max must be positive")

    def init(weights):
        n_pre, n_post = weights.shape
        return SymmetricState(jnp.zeros(n_pre, weights.dtype), jnp.zeros(n_post, weights.dtype))

    def update(weights, state: SymmetricState, act: Activity):
        decay = jnp.exp(-act.dt_ms / tau_ms).astype(weights.dtype)
        pre = act.pre.astype(weights.dtype)
        post = act.post.astype(weights.dtype)
        x_pre = state.x_pre * decay + pre
        x_post = state.x_post * decay + post
        lr = amplitude * jnp.asarray(act.gain, weights.dtype)
        dw = lr * (pre[:, None] * state.x_post[None, :] * decay + x_pre[:, None] * post[None, :])
        return jnp.clip(weights + dw, 0.0, w_max), SymmetricState(x_pre, x_post)

    return LearningRule(init, update)


@hookimpl
def snnjax_learning_rules():
    return {"symmetric-stdp": symmetric_stdp}
