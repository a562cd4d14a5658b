"""Continual-learning methods of the thesis' Method 1 as weight transforms (hook ``snnjax_regularizers``).

Each factory returns a :class:`snnjax.plasticity.LearningRule` transform to chain *after* a
learning rule (``chain(r_stdp(...), transform)``); all of them are pure and run under
``jit`` / ``vmap`` (their array arguments may be per-seed tracers):

``freeze-largest``
    :func:`freeze_largest`: the weights above the ``percentile``-th percentile of a weight
    tensor (the decision layer after task 1; thesis: top 10 %) keep their value: every update
    to them is undone. :func:`largest_mask` gives the mask alone.
``langevin-ranges``
    :func:`langevin_ranges`: each weight clipped to its own range ``[low_ij, high_ij]`` after
    every update (the per-weight quantiles of its trajectory under :func:`langevin_noise`).
``langevin-noise``
    :func:`langevin_noise`: after every update that followed a decision (reward or punishment,
    not silence), Gaussian noise ``σ·N(0, 1)`` is added to every weight, then the weights are
    clamped to ``[lb, ub]`` (the thesis' noise epochs: σ = 4·10⁻⁴, [0.2, 0.8]).
``noise-lr``
    :func:`noise_lr`: the learning rate of each update is perturbed by Gaussian noise with a
    standard deviation of ``std_fraction`` × its magnitude (thesis: 0.5). Implemented as one
    draw ``ξ ~ N(0, 1)`` per update scaling the update's increment by ``1 + std_fraction·ξ``
    (the same factor for the LTP and LTD rates of that update), then clamping to ``[lb, ub]``.
    The original code's exact draw is not known (reference-parameters §1.9).

The keys of the noisy transforms live in their state, so a run stays a pure function of
``(key, config, data)``.

**Any registered regularizer as a method.** The ``continual`` experiment's ``method`` also takes any
``snnjax_regularizers`` plugin by name, with parameters (``--set method=NAME``, or a TOML
``[[method]]`` table ``name = "NAME"`` plus parameters); :func:`method_transform` builds it, per seed,
inside the task-2 decision-layer program and chains it after R-STDP. Its factory gets, where it has a
parameter of that name and the table does not set it: ``weights`` (the seed's decision weights after
task 1, ``[200, 250, 5, 5]``), ``key`` (a per-seed ``jax.random`` key), ``lb`` / ``ub`` (R-STDP's weight
bounds, 0.2 / 0.8) and ``n_classes`` (the shared outputs). A third-party regularizer becomes a
continual method by being installed: a factory returning a :class:`~snnjax.plasticity.LearningRule`
transform whose ``update(w, state, activity)`` reads ``activity.w_before`` / ``activity.decision``
(:class:`snnjax_plugins.conv.stdp.ConvActivity`) as it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from snnjax import threefry
from snnjax.errors import ConfigError
from snnjax.hookspecs import hookimpl
from snnjax.plasticity import LearningRule, clip_per_weight, freeze
from snnjax.plugins import create_choice
from snnjax.quantiles import check_open_interval

__all__ = ["check_percentile", "largest_mask", "freeze_largest", "langevin_ranges", "langevin_noise", "noise_lr",
           "method_transform"]


def check_percentile(p: Any) -> float:
    """``p`` as a float, or :class:`ConfigError` unless ``0 < p < 100``."""
    return check_open_interval(p, 0.0, 100.0, "percentile")


def largest_mask(weights: jax.Array, percentile: float = 90.0) -> jax.Array:
    """``bool`` mask of the weights strictly above their ``percentile``-th percentile."""
    percentile = check_percentile(percentile)
    return weights > jnp.percentile(weights, percentile)


def freeze_largest(weights: jax.Array, percentile: float = 90.0) -> LearningRule:
    """Freeze the weights above the ``percentile``-th percentile of ``weights`` (top 10 % by default)."""
    return freeze(largest_mask(weights, percentile))


def langevin_ranges(low: jax.Array, high: jax.Array) -> LearningRule:
    """Clip every weight to its own range ``[low_ij, high_ij]`` after each update (Langevin ranges)."""
    return clip_per_weight(low, high)


def _bounds(lb: float, ub: float) -> None:
    if not lb < ub:
        raise ConfigError(f"weight bounds need lb < ub, got [{lb}, {ub}]")


def langevin_noise(key: jax.Array, sigma: float = 4e-4, lb: float = 0.2, ub: float = 0.8) -> LearningRule:
    """Add ``sigma·N(0, 1)`` to every weight after each reward/punish update, then clamp to ``[lb, ub]``.

    The activity must carry ``decision`` (``-1`` = silence: no update, no noise), as
    :class:`snnjax_plugins.conv.stdp.ConvActivity` does. State: the PRNG key. The draws are
    ``jax.random.normal``'s, computed by :func:`snnjax.threefry.normal` (the same bits, ≈ 2× faster
    on CPU for a large layer).
    """
    _bounds(lb, ub)
    if sigma < 0:
        raise ConfigError(f"sigma must be >= 0, got {sigma!r}")

    def update(w, key, activity):
        key, sub = jax.random.split(key)
        noisy = jnp.clip(w + sigma * threefry.normal(sub, w.shape, w.dtype), lb, ub)
        return jnp.where(jnp.asarray(activity.decision) >= 0, noisy, w), key

    return LearningRule(lambda w: key, update)


def noise_lr(key: jax.Array, std_fraction: float = 0.5, lb: float = 0.2, ub: float = 0.8) -> LearningRule:
    """Perturb each update's learning rate by Gaussian noise of std ``std_fraction × |rate|`` (see module doc)."""
    _bounds(lb, ub)
    if std_fraction < 0:
        raise ConfigError(f"std_fraction must be >= 0, got {std_fraction!r}")

    def update(w, key, activity):
        key, sub = jax.random.split(key)
        before = w if activity.w_before is None else activity.w_before
        factor = 1.0 + std_fraction * jax.random.normal(sub, (), w.dtype)
        return jnp.clip(before + (w - before) * factor, lb, ub), key

    return LearningRule(lambda w: key, update)


def method_transform(registry: Any, choice: Any, **context: Any) -> Callable[[jax.Array, jax.Array], LearningRule]:
    """``make(weights, key) -> LearningRule``: the regularizer ``choice`` built through ``registry``.

    ``weights`` (one seed's task-1 decision weights) and ``key`` (that seed's key) are per-seed values,
    passed inside the vmapped program; ``context`` (``lb``, ``ub``, ``n_classes``) is the same for every
    seed. Each reaches the factory only where it takes a parameter of that name that the choice does
    not set (:func:`snnjax.plugins.create_choice`).
    """

    def make(weights: jax.Array, key: jax.Array) -> LearningRule:
        return create_choice(registry, "regularizer", choice, weights=weights, key=key, **context)

    return make


@hookimpl
def snnjax_regularizers():
    return {
        "freeze-largest": freeze_largest,
        "langevin-ranges": langevin_ranges,
        "langevin-noise": langevin_noise,
        "noise-lr": noise_lr,
    }
