r"""Rate (Poisson/Bernoulli) encoding of images, with a dense and an exact sparse sampler.

Brian 2's ``PoissonGroup`` rule: in every step, input ``i`` spikes when
``U < rate_i·dt`` with a fresh uniform ``U``. Rates are proportional to the
pixel value: ``rate = pixel/255 · max_rate_hz`` (thesis: pixel/4 Hz, i.e.
63.75 Hz at 255).

:func:`sample_candidates` draws the *same* Bernoulli process (exactly, not an
approximation) from far fewer random numbers: on the grid of (step, active
input) cells, candidate cells with probability ``p_max`` are found by geometric
gaps, then each is kept with probability ``p_i/p_max`` (thinning). :func:`sample_table`
turns them into fixed-size per-step index lists (what the network reads),
with the spikes that do not fit counted.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.errors import ConfigError, InputError
from snnjax.hookspecs import hookimpl

#: Position used for "no candidate" (beyond every grid).
FAR = 1 << 30


def check_image(image, n_inputs: int | None = None) -> None:
    """Raise :class:`InputError` for a wrong shape, NaN/inf or negative intensities (concrete arrays only)."""
    shape = tuple(np.shape(image))
    if len(shape) != 1 and not (len(shape) == 2 and n_inputs is not None and shape[0] * shape[1] == n_inputs):
        raise InputError(f"an image must be a flat vector of {n_inputs or 'n'} pixels (or 28×28), got shape {shape}")
    if n_inputs is not None and math.prod(shape) != n_inputs:
        raise InputError(f"expected an image of {n_inputs} pixels, got shape {shape}")
    if isinstance(image, jax.core.Tracer):
        return
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"image pixels must be numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise InputError("image contains NaN or inf pixels")
    if np.any(arr < 0):
        raise InputError(f"image contains negative intensities (min {arr.min()}); pixels must be ≥ 0 (0–255)")


@dataclasses.dataclass(frozen=True)
class PoissonEncoder:
    """Bernoulli-per-step rate coding: spike when ``U < rate·dt``, ``rate = pixel/pixel_max · max_rate_hz``."""

    max_rate_hz: float = 63.75
    dt_ms: float = 0.1
    pixel_max: float = 255.0

    def __post_init__(self):
        if not self.dt_ms > 0:
            raise ConfigError(f"dt_ms must be a positive number of ms, got {self.dt_ms!r}")
        if not self.max_rate_hz >= 0:
            raise ConfigError(f"max_rate_hz must be ≥ 0 Hz, got {self.max_rate_hz!r}")
        if not self.pixel_max > 0:
            raise ConfigError(f"pixel_max must be > 0, got {self.pixel_max!r}")

    def rates_hz(self, image, scale=1.0):
        """Rates in Hz (``scale`` multiplies them, e.g. a D&C intensity ratio)."""
        x = jnp.asarray(image).reshape(-1).astype(jnp.zeros((), float).dtype)
        return x * (self.max_rate_hz / self.pixel_max) * scale

    def probabilities(self, image, scale=1.0):
        """Spike probability per step, ``rate·dt``."""
        return self.rates_hz(image, scale) * (self.dt_ms * 1e-3)

    def encode(self, key, image, n_steps: int, scale=1.0):
        """Dense raster ``bool[n_steps, n_inputs]`` (Brian's PoissonGroup rule)."""
        check_image(image)
        p = self.probabilities(image, scale)
        u = jax.random.uniform(key, (n_steps, p.shape[0]), dtype=p.dtype)
        return u < p[None, :]


class Candidates(NamedTuple):
    """Sorted candidate cells of one presentation (see :func:`sample_candidates`).

    Attributes:
        pos: ``int32[M + pad]`` cell positions ``step·n_active + column``, sorted, ``FAR`` after the end.
        idx: ``int32[M + pad]`` input index of each kept candidate, ``n_inputs`` for a rejected one.
        known_until: last cell position decided by the candidates (cells after it are drawn densely).
        order: ``int32[n_inputs]`` input index of each column (active inputs first).
        p_sorted: spike probability per column.
        n_active: number of inputs with ``p > 0``.
    """

    pos: jnp.ndarray
    idx: jnp.ndarray
    known_until: jnp.ndarray
    order: jnp.ndarray
    p_sorted: jnp.ndarray
    n_active: jnp.ndarray


def sample_candidates(key, p, n_steps: int, capacity: int, pad: int) -> Candidates:
    """Exact sparse sampling of ``n_steps`` Bernoulli steps with probabilities ``p`` (``[n_inputs]``).

    ``capacity`` candidates are drawn; if they do not cover the whole grid,
    ``known_until`` says where they stop and the caller draws the remaining
    cells densely (still exact).
    """
    n_in = p.shape[0]
    fdt = p.dtype
    order = jnp.argsort(p <= 0, stable=True).astype(jnp.int32)
    p_sorted = p[order]
    n_active = jnp.sum(p > 0).astype(jnp.int32)
    p_max = jnp.minimum(jnp.max(p), 1.0)
    k_gap, k_acc = jax.random.split(key)
    u = jax.random.uniform(k_gap, (capacity,), dtype=fdt, minval=jnp.finfo(fdt).tiny, maxval=1.0)
    grid = n_steps * n_active
    cap = jnp.asarray(n_steps * n_in + 1, fdt)
    lq = jnp.log1p(-p_max)  # −inf when p_max = 1: every cell is a candidate
    raw = jnp.floor(jnp.log(u) / lq) + 1
    gaps = jnp.where(p_max > 0, jnp.clip(raw, 1, cap), cap)
    posf = jnp.cumsum(gaps) - 1
    pos = jnp.where(posf < grid, posf, FAR).astype(jnp.int32)
    col = jnp.where(pos < grid, pos % jnp.maximum(n_active, 1), 0)
    v = jax.random.uniform(k_acc, (capacity,), dtype=fdt)
    keep = (pos < grid) & (v * p_max < p_sorted[col])
    idx = jnp.where(keep, order[col], n_in).astype(jnp.int32)
    last = posf[-1]
    known_until = jnp.where(last >= grid, grid, last).astype(jnp.int32)
    pos = jnp.concatenate([pos, jnp.full((pad,), FAR, jnp.int32)])
    idx = jnp.concatenate([idx, jnp.full((pad,), n_in, jnp.int32)])
    return Candidates(pos, idx, known_until, order, p_sorted, n_active)


class InputTable(NamedTuple):
    """Input events of one presentation as fixed-size per-step index lists.

    Attributes:
        idx: ``int32[n_steps, k]`` indices of the inputs that spike in each step, in increasing
            order, padded with ``n_inputs`` (an out-of-range index).
        dropped: ``int32`` number of spikes that did not fit (steps with more than ``k`` spikes);
            the table is exact when it is 0.
    """

    idx: jnp.ndarray
    dropped: jnp.ndarray


def _rank_in_segment(keys, keep):
    """For a sorted ``keys`` array: rank of each kept entry among the kept entries with the same key."""
    n = keys.shape[0]
    ar = jnp.arange(n, dtype=jnp.int32)
    starts = jnp.concatenate([jnp.ones((1,), bool), keys[1:] != keys[:-1]])
    first = jax.lax.cummax(jnp.where(starts, ar, 0))
    c = jnp.cumsum(keep.astype(jnp.int32))
    before = jnp.where(first > 0, c[jnp.maximum(first - 1, 0)], 0)
    return c - 1 - before


def sample_table(key, p, n_steps: int, k: int, capacity: int) -> InputTable:
    """Exact Bernoulli input (spike when ``U < p_i`` in every step) as per-step index lists.

    Draws the same process as a dense ``uniform(n_steps, n_inputs) < p`` raster
    (in distribution), from far fewer random numbers: candidate cells of the
    ``(step, active input)`` grid with probability ``p_max`` are found by
    geometric gaps, ``capacity`` at a time, each kept with probability
    ``p_i/p_max`` (thinning); a presentation-level ``while_loop`` draws further
    blocks of candidates until the grid is covered (normally one block). No
    work happens per time step. Spikes beyond ``k`` in one step are counted in
    ``dropped`` (the table is exact when it is 0).
    """
    n_in = p.shape[0]
    fdt = p.dtype
    order = jnp.argsort(p <= 0, stable=True).astype(jnp.int32)
    p_sorted = p[order]
    n_active = jnp.sum(p > 0).astype(jnp.int32)
    n_a = jnp.maximum(n_active, 1)
    p_max = jnp.minimum(jnp.max(p), 1.0)
    grid = (n_steps * n_active).astype(fdt)
    lq = jnp.log1p(-p_max)  # −inf when p_max = 1: every cell is a candidate
    cap = jnp.asarray(n_steps * n_in + 1, fdt)
    tiny = jnp.finfo(fdt).tiny

    def cond(c):
        return c[2] < grid

    def body(c):
        table, cnt, start, i, dropped = c
        k_gap, k_acc = jax.random.split(jax.random.fold_in(key, i))
        u = jax.random.uniform(k_gap, (capacity,), dtype=fdt, minval=tiny, maxval=1.0)
        raw = jnp.floor(jnp.log(u) / lq) + 1
        gaps = jnp.where(p_max > 0, jnp.clip(raw, 1, cap), cap)
        posf = start - 1 + jnp.cumsum(gaps)
        valid = posf < grid
        pos = jnp.where(valid, posf, 0).astype(jnp.int32)
        col = pos % n_a
        step = jnp.where(valid, pos // n_a, n_steps)
        v = jax.random.uniform(k_acc, (capacity,), dtype=fdt)
        keep = valid & (v * p_max < p_sorted[col])
        rank = _rank_in_segment(step, keep) + cnt[step]
        fits = keep & (rank < k)
        table = table.at[jnp.where(fits, step, n_steps), jnp.where(fits, rank, k)].set(
            order[col], mode="promise_in_bounds")
        cnt = cnt.at[step].add(keep.astype(jnp.int32), mode="promise_in_bounds")
        dropped = dropped + jnp.sum(keep & ~fits).astype(jnp.int32)
        return table, cnt, posf[-1] + 1, i + 1, dropped

    table0 = jnp.full((n_steps + 1, k + 1), n_in, jnp.int32)
    cnt0 = jnp.zeros((n_steps + 1,), jnp.int32)
    init = (table0, cnt0, jnp.zeros((), fdt), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    table, _, _, _, dropped = jax.lax.while_loop(cond, body, init)
    # cells are visited in order and active inputs keep their index order: each row is sorted
    return InputTable(table[:n_steps, :k], dropped)


def raster_table(raster, k: int) -> InputTable:
    """Per-step index lists (``int32[T, k]``, padded with ``n_inputs``) of a ``bool[T, n_inputs]`` raster."""
    raster = jnp.asarray(raster, bool)
    n_in = raster.shape[1]
    idx = jax.vmap(lambda r: jnp.nonzero(r, size=k, fill_value=n_in)[0])(raster).astype(jnp.int32)
    dropped = jnp.sum(jnp.maximum(jnp.sum(raster, axis=1) - k, 0)).astype(jnp.int32)
    return InputTable(idx, dropped)


def poisson(*, max_rate_hz: float = 63.75, dt_ms: float = 0.1, pixel_max: float = 255.0) -> PoissonEncoder:
    """Poisson/Bernoulli rate coding, rate ∝ pixel (63.75 Hz at 255 by default)."""
    return PoissonEncoder(max_rate_hz=max_rate_hz, dt_ms=dt_ms, pixel_max=pixel_max)


@hookimpl
def snnjax_encoders():
    return {"poisson": poisson}
