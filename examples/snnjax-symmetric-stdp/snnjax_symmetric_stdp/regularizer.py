r"""Synaptic scaling: each neuron's input weights drift multiplicatively towards a target sum.

Every step of ``dt`` ms, column ``j`` (the inputs of postsynaptic neuron ``j``) is scaled by

.. math::

    w_{ij} \leftarrow w_{ij}\,\Big(1 + \frac{dt}{\tau}\Big(\frac{T}{\sum_i w_{ij}} - 1\Big)\Big)

(``T``: ``target`` column sum, in the weights' unit; ``τ``: ``tau_ms``), after
the rule's update. A :class:`~snnjax.plasticity.LearningRule` transform with no
state: ``chain(rule, synaptic_scaling())``. It touches every weight every step,
so a chain with it runs the network's general path (it declares no fast form).
"""

from __future__ import annotations

import jax.numpy as jnp

from snnjax.plasticity import Activity, LearningRule


def synaptic_scaling(target: float = 1.0, tau_ms: float = 1000.0) -> LearningRule:
    """Synaptic scaling: each column's sum drifts towards ``target`` with time constant ``tau_ms``."""
    if not (target > 0 and tau_ms > 0):
        raise ValueError("target and tau_ms must be positive")

    def update(weights, state, act: Activity):
        dtype = weights.dtype
        total = jnp.sum(weights, axis=0, keepdims=True)
        rate = jnp.asarray(act.dt_ms, dtype) / jnp.asarray(tau_ms, dtype)
        ratio = jnp.where(total > 0, jnp.asarray(target, dtype) / jnp.where(total > 0, total, 1), 1)
        return weights * (1 + rate * (ratio - 1)), state

    return LearningRule(lambda w: (), update)
