"""The training step of an STDP conv layer from first-spike maps (``conv_impl = "events"``).

The input of an STDP layer is a cumulative latency wave: every unit fires at most once and stays
on, so with non-negative weights the potential of feature ``f`` at position ``p`` is

    pot[t, f, p] = Σ_k W[f, k] · [cols[p, k] <= t]        (``cols``: the patch of ``p`` in the first-spike map)

which never decreases in ``t``. Everything a training step of SpykeTorch's recipe reads from the
``T`` steps of the potentials (fire at θ ≥ 0 → pointwise inhibition → k-WTA → STDP) is then a
function of the first step ``e_p`` at which some feature of ``p`` exceeds θ and of the potentials
``pot[e_p, :, p]`` there:

* pointwise inhibition keeps ``winner_p = argmax_f pot[e_p, f, p]`` (ties: lowest ``f``), which
  spikes from ``e_p`` on (``sign = [t >= e_p]``) and is silent where nothing ever fires;
* its k-WTA score ``Σ_t sign·(g_e + V)`` needs ``[t >= e_p]`` and ``g_e = pot[e_p, winner_p, p]``;
* STDP reads the spike counts ``T − e_p`` of the winners and the input counts ``T − latency``.

``e_p ∈ [0, T]`` (``T`` = never) is found by bisection on the monotone predicate
``max_f pot[t, f, p] > θ``: ``⌈log2(T + 1)⌉`` rounds (4 for ``T = 15``), each one matrix product
``(P, K) × (K, F)`` at a per-position step; the potentials at ``e_p`` are those of the last probe
that fired (a position that never fires last probes ``T − 1``): 4 products of one step each
instead of the dense form's 15 steps (3.75× fewer multiply-adds). The sums are the same terms as the
dense form's but in a product of another shape, so they round differently (float32 rounding:
a potential within an ulp of θ, or two features within an ulp of each other at ``e_p``, may fall
the other way).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

from .inhibition import Winners, check_k_radius, survivor_k_winners
from .layers import latency_views


def patch_latencies(latency: Int[Array, "C H W"], kernel: tuple[int, int], padding: int,
                    timesteps: int) -> Int[Array, "P K"]:
    """First-spike steps of every position's receptive field: ``(H'·W', C·kh·kw)`` int32, ordered
    ``(c, i, j)`` like a flattened ``(F, C, kh, kw)`` weight; zero padding is ``T`` (never)."""
    cols = latency_views(latency, kernel, padding, timesteps)  # (C, K, H', W')
    c, k, ho, wo = cols.shape
    return cols.reshape(c * k, ho * wo).T


def potentials_at(cols: Int[Array, "P K"], weight_fk: Float[Array, "F K"], steps: Int[Array, " P"]) -> Float[Array, "P F"]:
    """``pot[steps_p, f, p] = Σ_k W[f, k]·[cols[p, k] <= steps_p]``: every position at its own step."""
    on = (cols <= steps[:, None]).astype(jnp.float32)
    return jnp.dot(on, weight_fk.T, precision=lax.Precision.HIGHEST)


def first_crossing(cols: Int[Array, "P K"], weight_fk: Float[Array, "F K"], threshold: float,
                   timesteps: int) -> tuple[Int[Array, " P"], Float[Array, "P F"]]:
    """``(e, pot_e)``: per position the first step with ``max_f pot > θ`` (``T`` = never) and the
    potentials at ``min(e, T − 1)``. Exact (up to rounding) when the weights are ≥ 0 (monotone potentials)."""
    n = cols.shape[0]
    lo = jnp.zeros((n,), jnp.int32)
    hi = jnp.full((n,), timesteps, jnp.int32)
    pot_e = jnp.zeros((n, weight_fk.shape[0]), jnp.float32)

    def halve(_, carry):
        lo, hi, pot_e = carry
        mid = (lo + hi) // 2  # < T while lo < hi
        pot = potentials_at(cols, weight_fk, jnp.minimum(mid, timesteps - 1))
        fired = jnp.max(pot, axis=1) > threshold
        open_ = lo < hi
        # the last probe that fired is at the final e; one that never fires last probes T − 1
        keep = open_ & (fired | (mid == timesteps - 1))
        return (jnp.where(open_ & ~fired, mid + 1, lo), jnp.where(open_ & fired, mid, hi),
                jnp.where(keep[:, None], pot, pot_e))

    lo, _, pot_e = lax.fori_loop(0, math.ceil(math.log2(timesteps + 1)), halve, (lo, hi, pot_e))
    return lo, pot_e


def first_spike_k_winners(latency: Int[Array, "C H W"], weight: Float[Array, "F C kh kw"], threshold: float,
                          timesteps: int, padding: int, k: int,
                          radius: int) -> tuple[Float[Array, "T F Ho Wo"], Winners, Int[Array, "Ho Wo"]]:
    """fire(θ) → pointwise inhibition → sign → k-WTA of a layer on a first-spike map, from the first
    crossings only: ``(spk, winners, e)`` as :func:`~.inhibition.pointwise_k_winners` gives them on
    the dense potentials (module docstring; weights ≥ 0 and θ ≥ 0). ``e`` ``(H', W')``: the first
    output spike step of each position (``T`` = none)."""
    k, radius = check_k_radius(k, radius)
    f, _, kh, kw = weight.shape
    t = timesteps
    cols = patch_latencies(latency, (kh, kw), padding, t)
    ho = latency.shape[1] + 2 * padding - kh + 1
    wo = latency.shape[2] + 2 * padding - kw + 1
    e, pot_e = first_crossing(cols, weight.astype(jnp.float32).reshape(f, -1), threshold, t)
    x_e = jnp.where(pot_e > threshold, pot_e, jnp.zeros((), pot_e.dtype))  # fire(θ) at e
    winner = jnp.argmax(x_e, axis=1).reshape(ho, wo)
    val = jnp.max(x_e, axis=1).reshape(ho, wo)  # x_e at the winner
    e = e.reshape(ho, wo)
    sg = (jnp.arange(t).reshape(t, 1, 1) >= e[None]).astype(jnp.float32)  # [t >= e]; none where e = T
    keep = jnp.arange(f)[:, None, None] == winner[None]
    spk = jnp.where(keep[None], sg[:, None], jnp.zeros((), jnp.float32))
    return spk, survivor_k_winners(sg * val[None], winner, f, k, radius), e
