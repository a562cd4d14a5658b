r"""Composable plasticity: learning rules as ``(init, update)`` pairs of pure functions.

A :class:`LearningRule` is shaped like an optax ``GradientTransformation``:

* ``init(weights) -> state`` builds the rule's state pytree (traces, schedules,
  keys, last-spike times ...);
* ``update(weights, state, activity) -> (weights, state)`` applies one time
  step of plasticity, given the step's :class:`Activity` (spikes and context).

Unlike optax, ``update`` returns the *new weights* rather than a delta: the
reference simulators clip after every event, and ``w + (clip(w + Δ) - w)`` is
not always ``clip(w + Δ)`` in floating point, which would break exact
agreement with them.

An optional third function, ``prepare(weights, state, activity) -> weights``,
runs *before* the step's spikes are transmitted (a lazily applied decay must act
before the presynaptic spike reads the weight). It must not change the state.

:func:`chain` composes rules and transforms — masks (:func:`freeze`), bounds
(:func:`clip`, :func:`clip_per_weight`), decays — into one rule. Transforms see
the weights as the previous element left them, and ``activity.w_before`` (the
weights at the start of the step).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

State = Any


class Activity(NamedTuple):
    """What a rule sees in one time step.

    Attributes:
        pre: ``bool[n_pre]`` presynaptic spikes in this step.
        post: ``bool[n_post]`` postsynaptic spikes in this step.
        t_ms: time of the step's start, ms.
        dt_ms: time step, ms.
        gain: scalar learning gain (``0.0`` switches learning off, e.g. at test).
        gate: ``float[n_post]`` per-postsynaptic modulation (e.g. 1 on the label's
            segment, 0 elsewhere; or a reward sign). Rules that ignore it may.
        pre_idx: indices of the spiking presynaptic neurons, padded with
            ``n_pre`` (an out-of-range index), for event-driven rules; or ``None``.
        post_idx: same for the postsynaptic neurons; or ``None``.
        w_before: the weights at the start of the step (filled by :func:`chain`).
    """

    pre: Bool[Array, " n_pre"]
    post: Bool[Array, " n_post"]
    t_ms: Float[Array, ""] | float = 0.0
    dt_ms: float = 0.1
    gain: Float[Array, ""] | float = 1.0
    gate: Float[Array, " n_post"] | None = None
    pre_idx: Int[Array, " k_pre"] | None = None
    post_idx: Int[Array, " k_post"] | None = None
    w_before: Float[Array, "n_pre n_post"] | None = None


def _identity_prepare(weights, state, activity):
    del state, activity
    return weights


class LearningRule(NamedTuple):
    """An ``(init, update)`` pair of pure functions (plus an optional ``prepare``)."""

    init: Callable[[Any], State]
    update: Callable[[Any, State, Activity], tuple[Any, State]]
    prepare: Callable[[Any, State, Activity], Any] = _identity_prepare


def identity() -> LearningRule:
    """No plasticity: weights never change."""
    return LearningRule(lambda w: (), lambda w, s, a: (w, s))


def chain(*rules: LearningRule) -> LearningRule:
    """Compose rules and transforms left to right into one :class:`LearningRule`.

    The state is the tuple of the children's states. ``prepare`` runs the
    children's ``prepare`` in order; ``update`` threads the weights through
    each child's ``update``, with ``activity.w_before`` set to the weights at
    the start of the step. :func:`chain_parts` gives back the children (an
    engine may run a composition it recognises by a faster, equivalent path).
    """
    if not rules:
        return identity()

    def init(weights):
        return tuple(r.init(weights) for r in rules)

    def prepare(weights, state, activity):
        for r, s in zip(rules, state):
            weights = r.prepare(weights, s, activity)
        return weights

    def update(weights, state, activity):
        activity = activity._replace(w_before=weights)
        new_state = []
        for r, s in zip(rules, state):
            weights, s = r.update(weights, s, activity)
            new_state.append(s)
        return weights, tuple(new_state)

    _CHAIN_PARTS[update] = tuple(rules)
    return LearningRule(init, update, prepare)


_CHAIN_PARTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def chain_parts(rule: LearningRule) -> tuple[LearningRule, ...] | None:
    """The rules a :func:`chain` was made of, in order, or ``None`` if ``rule`` is not a chain."""
    try:
        return _CHAIN_PARTS.get(rule.update)
    except TypeError:
        return None


def clip(low: float, high: float) -> LearningRule:
    """Hard bounds: ``w ← clip(w, low, high)`` after the preceding updates."""
    if not low < high:
        from .errors import ConfigError

        raise ConfigError(f"clip bounds need low < high, got low={low}, high={high}")
    return LearningRule(lambda w: (), lambda w, s, a: (jnp.clip(w, low, high), s))


def clip_per_weight(low: Float[Array, "..."], high: Float[Array, "..."]) -> LearningRule:
    """Per-weight ranges: ``w_ij ← clip(w_ij, low_ij, high_ij)`` (e.g. Langevin ranges)."""
    low = jnp.asarray(low)
    high = jnp.asarray(high)
    return LearningRule(lambda w: (), lambda w, s, a: (jnp.clip(w, low, high), s))


def freeze(mask: Bool[Array, "..."]) -> LearningRule:
    """Freeze the weights where ``mask`` is true: they keep their start-of-step value."""
    mask = jnp.asarray(mask, dtype=bool)

    def update(w, s, a):
        before = w if a.w_before is None else a.w_before
        return jnp.where(mask, before, w), s

    return LearningRule(lambda w: (), update)
