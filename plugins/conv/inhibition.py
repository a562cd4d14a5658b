"""Inhibition on ``(T, F, H, W)`` potentials: pointwise (cross-feature) and k-winners-take-all.

Both follow SpykeTorch exactly (see the golden fixtures):

* :func:`pointwise_inhibition` keeps, at each position, only the feature that fires first
  (earliest step counted as ``T - #{t: max_f x[t] > 0}``), ties broken by the largest potential
  at that step, then by the lowest feature index.
* :func:`k_winners` picks ``k`` winners one after another with the score
  ``Σ_t spk[t]·(pot[e] + V)`` (``e`` = first-spike step, ``V = T·max(spk·pot[e])``): an earlier
  first spike always beats a larger potential; ties go to the lowest flat ``(f, row, col)``
  index. Each winner removes its whole feature map and a ``(2r+1)²`` window across all maps
  before the next pick. The loop is a fixed-length ``lax.fori_loop``; missing winners are
  ``(-1, -1, -1)`` rows with ``valid == False``.
"""

from __future__ import annotations

import functools
import operator

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from snnjax.errors import ConfigError, InputError


def _check(pot: jax.Array) -> None:
    if pot.ndim != 4:
        raise InputError(f"potentials must be time-major (T, F, H, W), got shape {pot.shape}")


def check_k_radius(k, radius) -> tuple[int, int]:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ConfigError(f"k (number of winners) must be a positive integer, got {k!r}")
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise ConfigError(f"inhibition radius must be a non-negative integer, got {radius!r}")
    return k, radius


@jax.jit
def pointwise_inhibition(x: jax.Array) -> jax.Array:
    """Per position keep only the earliest-firing feature (ties: larger potential, then lower index)."""
    _check(x)
    winner, factor = _pointwise_survivor(x)
    keep = jnp.arange(x.shape[1])[:, None, None] == winner[None]  # (F, H, W)
    return jnp.where(keep[None], x * factor[None, None], jnp.zeros((), x.dtype))


def _pointwise_survivor(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(winner, factor)`` ``(H, W)`` of pointwise inhibition on ``x`` ``(T, F, H, W)``.

    With ``m_t = max_f x[t]`` and ``e = clip(T − #{t: m_t > 0}, 0, T − 1)`` (the first step at which
    any feature fires, for a cumulative wave), the surviving feature is ``argmax_f x[e, f]`` (ties:
    the lowest index) and ``factor = sign(m_{T−1})``. The argmax runs on the ``(F, H, W)`` slice at
    step ``e`` only, not on all ``T`` steps: the same winner as ``argmax_f`` at every step taken at
    ``e``, at a ``T``-th of the cost.
    """
    t = x.shape[0]
    m = jnp.max(x, axis=1)  # (T, H, W)
    e = jnp.clip(t - jnp.sum(m > 0, axis=0), 0, t - 1)  # (H, W)
    at_e = jnp.take_along_axis(x, e[None, None], axis=0)[0]  # (F, H, W): x at step e
    return jnp.argmax(at_e, axis=0), jnp.sign(m[-1])  # lowest feature index on ties


@jax.jit
def winner_scores(pot: jax.Array, spikes: jax.Array | None = None) -> jax.Array:
    """SpykeTorch's k-WTA score per neuron ``(F, H, W)`` (see module docstring)."""
    _check(pot)
    t = pot.shape[0]
    spk = jnp.sign(pot) if spikes is None else spikes.astype(pot.dtype)
    e = jnp.clip(t - jnp.sum(spk, axis=0), 0, t - 1).astype(jnp.int32)
    val = jnp.take_along_axis(pot, e[None], axis=0)[0]
    big = t * jnp.max(spk * val[None])
    return jnp.sum(spk * (val + big)[None], axis=0)


class Winners(NamedTuple):
    """``index``: ``(k, 3)`` int32 ``(feature, row, col)``, ``-1`` rows when none; ``valid``: ``(k,)`` bool."""

    index: jax.Array
    valid: jax.Array


@functools.partial(jax.jit, static_argnames=('k',))
def winners_from_scores(score: jax.Array, k: int, radius: int | jax.Array = 0) -> Winners:
    """Greedy k-winner selection on a score map ``(F, H, W)``; stops when the best score is exactly 0."""
    f, h, w = score.shape
    fi = jnp.arange(f)[:, None, None]
    ri = jnp.arange(h)[None, :, None]
    ci = jnp.arange(w)[None, None, :]

    def pick(s):
        flat = jnp.argmax(s.reshape(-1))
        wf, rem = jnp.divmod(flat, h * w)
        wr, wc = jnp.divmod(rem, w)
        return s.reshape(-1)[flat], (wf, wr, wc), fi == wf

    return _greedy_picks(score, pick, ri, ci, k, radius)


def _greedy_picks(score: jax.Array, pick, ri: jax.Array, ci: jax.Array, k: int, radius) -> Winners:
    """The ``k`` greedy picks on ``score``: ``pick(s) -> (best, (f, row, col), same_feature_mask)``;
    each pick zeroes its feature and the ``(2r+1)²`` window around it (``ri``, ``ci``: the row and
    column index grids, broadcast as ``score``); stops when the best score is exactly 0."""

    def body(i, carry):
        s, out, valid, done = carry
        best, (wf, wr, wc), same_feature = pick(s)
        ok = jnp.logical_and(~done, best != 0)
        kill = same_feature | ((jnp.abs(ri - wr) <= radius) & (jnp.abs(ci - wc) <= radius) & (radius > 0))
        s = jnp.where(ok & kill, jnp.zeros((), s.dtype), s)
        row = jnp.where(ok, jnp.stack([wf, wr, wc]).astype(jnp.int32), -1)
        return s, out.at[i].set(row), valid.at[i].set(ok), done | ~ok

    init = (score, jnp.full((k, 3), -1, jnp.int32), jnp.zeros((k,), bool), jnp.array(False))
    _, out, valid, _ = lax.fori_loop(0, k, body, init)
    return Winners(out, valid)


def k_winners(pot: jax.Array, k: int, radius: int = 0, spikes: jax.Array | None = None) -> Winners:
    """SpykeTorch ``get_k_winners``: ``k`` winners in order, each inhibiting its map and a ``(2r+1)²`` window."""
    k, radius = check_k_radius(k, radius)
    return winners_from_scores(winner_scores(pot, spikes), k, radius)


@functools.partial(jax.jit, static_argnames=('k', 'radius'))
def pointwise_k_winners(x: jax.Array, k: int, radius: int = 0) -> tuple[jax.Array, jax.Array, Winners]:
    """``(pot, spk, winners)`` of pointwise inhibition, then k-WTA on its output: bit for bit
    ``pot = pointwise_inhibition(x)``, ``spk = sign(pot)``, ``k_winners(pot, k, radius, spk)``.

    After pointwise inhibition at most one feature per position ``(h, w)`` is non-zero, so the k-WTA
    score ``Σ_t spk[t]·(pot[e] + V)`` (module docstring) is computed on that feature's ``(T, H, W)``
    potentials only — an ``F``-th of the work — and scattered back into an ``(F, H, W)`` map of
    zeros (every other neuron never spikes: its score is exactly 0, and its ``spk·pot[e] = 0``
    enters ``V`` through the ``max`` with 0).
    """
    _check(x)
    k, radius = check_k_radius(k, radius)
    t, f = x.shape[0], x.shape[1]
    winner, factor = _pointwise_survivor(x)  # (H, W): the surviving feature
    keep = jnp.arange(f)[:, None, None] == winner[None]
    # the surviving feature's potentials (T, H, W), as pointwise_inhibition computes them
    g = jnp.take_along_axis(x, jnp.broadcast_to(winner[None, None], (t, 1) + winner.shape), axis=1)[:, 0] * factor[None]
    sg = jnp.sign(g)
    # pointwise_inhibition(x) and its sign, built from g: where keep, x·factor is g (the same product)
    zero = jnp.zeros((), x.dtype)
    pot = jnp.where(keep[None], g[:, None], zero)
    spk = jnp.where(keep[None], sg[:, None], zero)
    return pot, spk, survivor_k_winners(g, winner, f, k, radius)


def survivor_k_winners(g: jax.Array, survivor: jax.Array, n_features: int, k: int, radius: int) -> Winners:
    """k-WTA winners when only the feature ``survivor`` ``(H, W)`` (of ``n_features``) survives at each
    position, from its potentials ``g`` ``(T, H, W)`` (after pointwise inhibition): the score is
    ``Σ_t sign(g_t)·(g_e + V)`` there and 0 elsewhere (see :func:`pointwise_k_winners`). Only
    ``sign(g)`` and ``g`` at the first spike ``e`` enter it; the greedy picks run on the ``(H, W)``
    survivors' scores (:func:`winners_one_per_position`), not on the ``(F, H, W)`` map.
    """
    t = g.shape[0]
    sg = jnp.sign(g)
    e = jnp.clip(t - jnp.sum(sg, axis=0), 0, t - 1).astype(jnp.int32)
    val = jnp.take_along_axis(g, e[None], axis=0)[0]
    top = jnp.max(sg * val[None])
    if n_features > 1:  # the other features' neurons: spk · pot[e] = 0
        top = jnp.maximum(top, jnp.zeros((), top.dtype))
    big = t * top
    return winners_one_per_position(time_sum(sg * (val + big)[None]), survivor, n_features, k, radius)


def winners_one_per_position(score: jax.Array, feature: jax.Array, n_features: int, k: int,
                             radius: int | jax.Array = 0) -> Winners:
    """:func:`winners_from_scores` of the ``(F, H, W)`` map that holds ``score[h, w]`` at feature
    ``feature[h, w]`` and 0 everywhere else (``F = n_features``), from the ``(H, W)`` arrays alone:
    the same winners in the same order (the best score, ties to the lowest flat ``(f, row, col)``
    index; each pick removes its feature and its window) at an ``F``-th of the work per pick.
    """
    h, w = score.shape
    ri = jnp.arange(h)[:, None]
    ci = jnp.arange(w)[None, :]
    flat = feature.astype(jnp.int32) * (h * w) + ri * w + ci  # the entry's index in the (F, H, W) map
    none = jnp.iinfo(jnp.int32).max

    def pick(s):
        best = jnp.max(s)
        if n_features > 1:  # the map's other entries are 0
            best = jnp.maximum(best, jnp.zeros((), s.dtype))
        wr, wc = jnp.divmod(jnp.argmin(jnp.where(s == best, flat, none)), w)
        wf = feature[wr, wc].astype(jnp.int32)
        return best, (wf, wr, wc), feature == wf

    return _greedy_picks(score, pick, ri, ci, k, radius)


def time_sum(terms: jax.Array) -> jax.Array:
    """``Σ_t terms[t]`` over the leading (time) axis in one fixed float32 order: blocks of 4
    consecutive steps, each summed left to right, and the block sums left to right.

    That is the order XLA's CPU reduction (JAX 0.10) takes for ``jnp.sum(axis=0)`` under ``vmap`` with
    two or more seeds — the form of every stored result — while for one seed alone it takes
    another, so a k-WTA near-tie could fall otherwise for a seed alone. Written out, the additions
    cannot be reordered, whatever the batch (``tests/test_conv_events.py``).
    """

    def left_to_right(rows):
        return functools.reduce(operator.add, rows)

    return left_to_right([left_to_right(terms[start:start + 4]) for start in range(0, terms.shape[0], 4)])


def last_step_winner(pot_last: jax.Array, timesteps: int) -> Winners:
    """The single k=1 winner of a "no threshold" layer from its last-step potentials ``(F, H, W)`` only.

    Equal to ``k_winners(pot, 1, 0, fire(pot, None)[0])`` on the full ``(T, F, H, W)`` potentials
    (whose score depends on the last step only), at a ``T``-th of the cost.
    """
    spk = jnp.sign(pot_last)
    big = timesteps * jnp.max(spk * pot_last)
    return winners_from_scores(spk * (pot_last + big), 1, 0)


def pointwise():
    """Pointwise (cross-feature) inhibition: per position only the earliest-firing feature survives."""

    def inhibit(pot: jax.Array, spikes: jax.Array | None = None) -> jax.Array:
        del spikes  # the scheme reads the potentials only
        return pointwise_inhibition(pot)

    return inhibit


class KWinnersTakeAll(NamedTuple):
    """SpykeTorch's k-WTA as a value: ``inhibit(pot, spikes=None) -> Winners`` (see :func:`k_winners`).

    Its type is its capability: a conv layer whose inhibition is a ``KWinnersTakeAll`` runs the fused
    pointwise + k-WTA step (:func:`pointwise_k_winners`, bit for bit the same winners, faster).
    """

    k: int = 5
    radius: int = 0

    def __call__(self, pot: jax.Array, spikes: jax.Array | None = None) -> Winners:
        return k_winners(pot, self.k, self.radius, spikes)


def k_wta(k: int = 5, radius: int = 0) -> KWinnersTakeAll:
    """k winners-take-all with lateral inhibition radius (SpykeTorch get_k_winners); returns f(pot, spikes=None)."""
    k, radius = check_k_radius(k, radius)
    return KWinnersTakeAll(k, radius)


def winners_of(result, pot: jax.Array, spikes: jax.Array, k: int) -> Winners:
    """The learning winners of a conv layer from what its inhibition scheme returned.

    The conv layers take any :class:`snnjax.inhibition.Inhibition` called as ``inhibit(pot, spikes)``
    on the layer's time-major potentials ``[T, F, H, W]`` (after pointwise inhibition) and spikes:

    * a result with ``index`` ``[k', 3]`` (feature, row, col) and ``valid`` ``[k']`` (a :class:`Winners`)
      names the winners itself;
    * an array of the potentials' shape (the potentials with the losers silenced, as ``pointwise`` or a
      global winner-take-all returns) makes every neuron left non-zero at some step a candidate: up to
      ``k`` of them win, in k-WTA order on their own potentials (earliest first spike, then the larger
      potential; one per feature map; no lateral radius).
    """
    if hasattr(result, "index") and hasattr(result, "valid"):
        return Winners(jnp.asarray(result.index, jnp.int32), jnp.asarray(result.valid, bool))
    result = jnp.asarray(result)
    if result.shape != pot.shape:
        raise InputError(f"a conv layer's inhibition must return winners (index, valid) or an array of the "
                         f"potentials' shape {pot.shape}, got shape {result.shape}")
    alive = jnp.any(result != 0, axis=0)[None]
    zero = jnp.zeros((), pot.dtype)
    return k_winners(jnp.where(alive, pot, zero), k, 0, jnp.where(alive, spikes.astype(pot.dtype), zero))
