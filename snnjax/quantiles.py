r"""Streaming per-weight quantiles with bounded memory: the P² algorithm, vectorised.

The Langevin ranges of the thesis' Method 1 need, for every weight of a layer, quantiles
(e.g. the 10th and 90th percentiles) of its trajectory over thousands of snapshots. Storing the
snapshots costs ``snapshots × weights`` floats (5,760 × 1.25 M in the thesis). The P² algorithm
(Jain & Chlamtac, 1985) keeps five markers per quantile instead — heights ``q`` and positions
``n`` — and adjusts them with a piecewise-parabolic formula after every observation, so the
memory is ``2 × 5`` floats per weight and quantile, whatever the stream length.

Everything is a pure function on a :class:`P2State` pytree of five marker arrays of the weights'
shape each; it jits and vmaps (e.g. over seeds):

.. code-block:: python

    state = p2_init(w.shape)
    for snapshot in snapshots:
        state = p2_update(state, snapshot, p=0.1)
    low = p2_estimate(state, p=0.1)

:func:`quantiles_init` / :func:`quantiles_update` / :func:`quantiles_estimate` run one P²
estimator per probability of a tuple. Until 5 observations have arrived the estimate is the
exact (linearly interpolated) quantile of those seen; afterwards it is the P² approximation,
whose error shrinks as the stream grows (see ``tests/test_continual.py`` for the tolerance we
check against exact quantiles).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from .errors import ConfigError

__all__ = ["P2State", "check_probability", "p2_init", "p2_update", "p2_estimate", "quantiles_init",
           "quantiles_update", "quantiles_estimate"]


class P2State(NamedTuple):
    """Markers of one P² estimator per element.

    Attributes:
        q: five ``float32[*shape]`` marker heights, lowest first (the first observations, while
            ``count < 5``).
        n: five ``float32[*shape]`` marker positions (0-based ranks).
        count: ``int32`` scalar: observations so far.

    The markers are five arrays, not one ``[5, *shape]`` stack, and an update selects between its
    two branches element-wise, not through ``lax.cond``: the same arithmetic, bit for bit, 1.3–1.4×
    faster on CPU (``benchmarks/langevin_step.py``; the stack was re-sliced and re-stacked, and the
    ``cond`` copied every marker array, on every update).
    """

    q: tuple[jax.Array, ...]
    n: tuple[jax.Array, ...]
    count: jax.Array


def check_open_interval(x: Any, low: float, high: float, what: str) -> float:
    """``x`` as a float, or :class:`ConfigError` unless ``low < x < high``."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number in ({low:g}, {high:g}), got {x!r}") from None
    if not low < value < high:
        raise ConfigError(f"{what} must be strictly between {low:g} and {high:g}, got {x!r}")
    return value


def check_probability(p: float, what: str = "quantile") -> float:
    """``p`` as a float, or :class:`ConfigError` unless ``0 < p < 1``."""
    return check_open_interval(p, 0.0, 1.0, what)


def p2_init(shape: Sequence[int], dtype=jnp.float32) -> P2State:
    """An empty estimator for arrays of ``shape``."""
    z = jnp.zeros(tuple(shape), dtype)
    return P2State((z,) * 5, tuple(z + i for i in range(5)), jnp.zeros((), jnp.int32))


def _increments(p: float, dtype) -> jax.Array:
    return jnp.asarray([0.0, p / 2, p, (1 + p) / 2, 1.0], dtype)


def _sorted5(v: list[jax.Array]) -> list[jax.Array]:
    """The five arrays sorted element by element (a 9-comparator sorting network of min/max)."""
    v = list(v)
    for i, j in ((0, 1), (3, 4), (2, 4), (2, 3), (0, 3), (0, 2), (1, 4), (1, 3), (1, 2)):
        v[i], v[j] = jnp.minimum(v[i], v[j]), jnp.maximum(v[i], v[j])
    return v


def _fill(state: P2State, x: jax.Array) -> P2State:
    """One of the first five observations: store it; sort the five once complete."""
    q = [jnp.where(state.count == i, x, qi) for i, qi in enumerate(state.q)]
    count = state.count + 1
    q = [jnp.where(count == 5, a, b) for a, b in zip(_sorted5(q), q)]
    return P2State(tuple(q), state.n, count)


def _p2_step(state: P2State, x: jax.Array, p: float) -> P2State:
    q, n = list(state.q), list(state.n)
    dtype = q[0].dtype
    x = x.astype(dtype)
    count = state.count + 1
    # cell k (0..3) of x: number of interior markers q1..q3 that are <= x; markers above shift up
    k = (x >= q[1]).astype(jnp.int32) + (x >= q[2]) + (x >= q[3])
    n = [n[0]] + [n[i] + (i > k).astype(dtype) for i in range(1, 5)]
    # extreme markers follow the minimum / maximum
    q[0], q[4] = jnp.minimum(q[0], x), jnp.maximum(q[4], x)
    desired = _increments(p, dtype) * (count - 1).astype(dtype)
    for i in (1, 2, 3):  # sequential, as in the algorithm: marker i sees the updated marker i-1
        d = desired[i] - n[i]
        up = (d >= 1) & (n[i + 1] - n[i] > 1)
        down = (d <= -1) & (n[i - 1] - n[i] < -1)
        move = up | down
        s = jnp.where(up, 1.0, -1.0).astype(dtype)
        span = n[i + 1] - n[i - 1]
        parab = q[i] + s / span * ((n[i] - n[i - 1] + s) * (q[i + 1] - q[i]) / (n[i + 1] - n[i])
                                   + (n[i + 1] - n[i] - s) * (q[i] - q[i - 1]) / (n[i] - n[i - 1]))
        nb = jnp.where(up, n[i + 1], n[i - 1])
        qb = jnp.where(up, q[i + 1], q[i - 1])
        linear = q[i] + s * (qb - q[i]) / (nb - n[i])
        ok = (q[i - 1] < parab) & (parab < q[i + 1])
        new_q = jnp.where(ok, parab, linear)
        q[i] = jnp.where(move, new_q, q[i])
        n[i] = jnp.where(move, n[i] + s, n[i])
    return P2State(tuple(q), tuple(n), count)


def p2_update(state: P2State, x: jax.Array, p: float) -> P2State:
    """Add one observation per element (``x`` has the estimator's shape)."""
    p = check_probability(p)
    x = x.astype(state.q[0].dtype)
    # both branches, selected element-wise (a lax.cond copies every marker array in and out)
    filling, stepped = _fill(state, x), _p2_step(state, x, p)
    return jax.tree.map(lambda a, b: jnp.where(state.count < 5, a, b), filling, stepped)


def p2_estimate(state: P2State, p: float) -> jax.Array:
    """The current estimate of the ``p``-quantile of every element (NaN before any observation)."""
    p = check_probability(p)
    c = state.count
    # fewer than 5 observations: exact linear-interpolation quantile of those seen
    q = jnp.stack(state.q)
    filled = jnp.arange(5).reshape((5,) + (1,) * (q.ndim - 1)) < c
    big = jnp.asarray(jnp.finfo(q.dtype).max, q.dtype)
    seen = jnp.sort(jnp.where(filled, q, big), axis=0)
    pos = p * (jnp.maximum(c, 1) - 1).astype(q.dtype)
    lo = jnp.floor(pos).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, jnp.maximum(c - 1, 0))
    frac = pos - lo.astype(q.dtype)
    exact = seen[lo] * (1 - frac) + seen[hi] * frac
    exact = jnp.where(c > 0, exact, jnp.nan)
    return jnp.where(c >= 5, state.q[2], exact)


def quantiles_init(shape: Sequence[int], probs: Sequence[float], dtype=jnp.float32) -> tuple[P2State, ...]:
    """One empty P² estimator per probability in ``probs``."""
    for p in probs:
        check_probability(p)
    return tuple(p2_init(shape, dtype) for _ in probs)


def _block_layout(size: int, block: int) -> tuple[int, int]:
    """``(blocks, length)`` covering ``size`` elements: a divisor of ``size`` near ``block`` if one
    exists within a factor 2 (no padding), else ``ceil(size / block)`` blocks of ``block``."""
    for length in range(block, block // 2, -1):
        if size % length == 0:
            return size // length, length
    return -(-size // block), block


def quantiles_update(states: tuple[P2State, ...], x: jax.Array, probs: Sequence[float],
                     block: int = 4096) -> tuple[P2State, ...]:
    """Add one observation per element to every estimator.

    Arrays of more than ``2 · block`` elements are updated ``block`` elements at a time (a
    ``lax.map`` over blocks; every element's arithmetic is the same, bit for bit). A P² step is
    some 17 fused loops that each read most of the 11 input arrays: over a whole 1.25 M-weight
    layer they stream them from memory every time, within a block they find them in cache —
    2.2× faster on CPU for the 1.25 M weights of the conv decision layer (``benchmarks/langevin_step.py``).
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    x = jnp.asarray(x)
    size = x.size
    if size <= 2 * block:
        return tuple(p2_update(s, x, p) for s, p in zip(states, probs))
    blocks, length = _block_layout(size, block)
    pad = blocks * length - size

    def split(a):
        a = a.reshape(-1)
        return (jnp.pad(a, (0, pad)) if pad else a).reshape(blocks, length)

    def join(a):
        a = a.reshape(-1)
        return (a[:size] if pad else a).reshape(x.shape)

    def one_block(args):
        xb, markers = args
        return tuple((u.q, u.n) for u in (p2_update(P2State(q, n, s.count), xb, p)
                                           for s, (q, n), p in zip(states, markers, probs)))

    markers = jax.tree.map(split, tuple((s.q, s.n) for s in states))
    new = jax.lax.map(one_block, (split(x), markers))
    return tuple(P2State(tuple(map(join, q)), tuple(map(join, n)), s.count + 1) for s, (q, n) in zip(states, new))


def quantiles_estimate(states: tuple[P2State, ...], probs: Sequence[float]) -> tuple[jax.Array, ...]:
    """The estimates, one array per probability."""
    return tuple(p2_estimate(s, p) for s, p in zip(states, probs))
