"""Image front end of convolutional STDP networks: DoG filters and intensity-to-latency coding.

All functions follow the semantics of the SpykeTorch library (Mozafari et al. 2019) exactly:

* :func:`dog_kernel` / :func:`dog_filter_bank` — difference-of-Gaussians kernels, each one
  mean-subtracted and divided by its maximum, smaller kernels zero-padded (centred) to the
  largest window. Built in float64 with NumPy (at configuration time), returned as float32.
* :func:`dog_filter` — cross-correlation of a 2-D image with the bank (zero padding), then every
  value **strictly below** the threshold is set to 0.
* :func:`local_normalization` — division by the local mean over a ``(2r+1)²`` box with zero
  padding and the fixed divisor ``(2r+1)²`` (plus ``eps``).
* Both sums over a window are taken in one written-out order (:func:`tap_sum`), so the spike maps
  do not depend on the thread count or the CPU.
* :func:`intensity_to_latency` — all values of ``(C, H, W)`` are ranked jointly (descending),
  ``bin_size = nnz // T``; rank ``p`` spikes at step ``p // bin_size``; the ``nnz - T·bin_size``
  smallest non-zero values never spike. Waves are **cumulative** (a neuron that spiked at ``t`` is
  on at every later step). Ties are broken by the lower flat index (the original's sort is not
  stable, so its tie order is implementation-defined).

Spike waves are time-major ``(T, C, H, W)``. A compact exact representation of a cumulative wave
is its first-spike step map (``uint8``, ``T`` = never): see :func:`wave_to_latency` and
:func:`latency_to_wave`.
"""

from __future__ import annotations

import functools
import inspect

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, Int

from snnjax.errors import ConfigError, InputError

from .layers import window_views

#: The six DoG kernels (window, sigma1, sigma2) of Mozafari et al. (MNIST).
MOZAFARI_DOG = ((3, 3 / 9, 6 / 9), (3, 6 / 9, 3 / 9), (7, 7 / 9, 14 / 9), (7, 14 / 9, 7 / 9), (13, 13 / 9, 26 / 9), (13, 26 / 9, 13 / 9))
#: The two DoG kernels of Kheradpisheh et al. 2018 (SpykeTorch re-implementation).
KHERADPISHEH_DOG = ((7, 1.0, 2.0), (7, 2.0, 1.0))


#: Part of every front-end cache key: raised whenever the maps the front end computes may change
#: (2: window sums in :func:`tap_sum`'s order; before, XLA's convolution, whose order depends on
#: the thread count), so a ``cache_dir`` never serves maps another version computed.
MAPS_VERSION = 2


def check_timesteps(timesteps: int) -> int:
    if not isinstance(timesteps, (int, np.integer)) or isinstance(timesteps, bool) or timesteps <= 0:
        raise ConfigError(f"timesteps must be a positive integer, got {timesteps!r}")
    return int(timesteps)


def dog_kernel(window: int, sigma1: float, sigma2: float) -> np.ndarray:
    """One DoG kernel of side ``2*(window//2)+1``, mean-subtracted and divided by its max (float32)."""
    if int(window) <= 0:
        raise ConfigError(f"DoG window must be a positive integer, got {window!r}")
    if sigma1 <= 0 or sigma2 <= 0:
        raise ConfigError(f"DoG sigmas must be positive, got ({sigma1!r}, {sigma2!r})")
    half = int(window) // 2
    grid = np.arange(-half, half + 1, dtype=np.float64)
    r2 = grid[:, None] ** 2 + grid[None, :] ** 2
    g1 = np.exp(-r2 / (2.0 * sigma1**2)) / sigma1**2
    g2 = np.exp(-r2 / (2.0 * sigma2**2)) / sigma2**2
    k = (g1 - g2) / (2.0 * np.pi)
    k = k - k.mean()
    k = k / k.max()
    return k.astype(np.float32)


def dog_filter_bank(params: Sequence[Sequence[float]] = MOZAFARI_DOG) -> np.ndarray:
    """Stack DoG kernels ``[(window, sigma1, sigma2), ...]`` into ``(n, 1, K, K)``, zero-padding to the largest."""
    if len(params) == 0:
        raise ConfigError("the DoG filter bank needs at least one (window, sigma1, sigma2) triple")
    kernels = [dog_kernel(*p) for p in params]
    size = max(k.shape[0] for k in kernels)
    out = np.zeros((len(kernels), 1, size, size), np.float32)
    for i, k in enumerate(kernels):
        off = (size - k.shape[0]) // 2
        out[i, 0, off : off + k.shape[0], off : off + k.shape[0]] = k
    return out


def _unfused(p: jax.Array) -> jax.Array:
    """``p`` itself, kept out of an FMA: XLA/LLVM fuse a product into the add that follows it (one
    rounding instead of two) unless something else stands between them; this select (it only
    turns a NaN into 0) does."""
    return jnp.where(p == p, p, jnp.zeros((), p.dtype))


def _pairwise8(v: Sequence[jax.Array]) -> jax.Array:
    """``((v0 + v1) + (v4 + v5)) + ((v2 + v3) + (v6 + v7))``: how an 8-lane vector is summed."""
    return ((v[0] + v[1]) + (v[4] + v[5])) + ((v[2] + v[3]) + (v[6] + v[7]))


def tap_sum(padded: Float[Array, "*lead Hp Wp"], window: tuple[int, int],
            weights: Float[Array, "n K *bcast"]) -> Float[Array, "..."]:
    """``Σ_k view_k·weights[:, k]`` over the ``K = kh·kw`` shifted views of ``padded`` (view ``k = i·kw + j``
    is offset ``(i, j)``, as :func:`~snnjax_plugins.conv.layers.window_views`) for ``n`` filters
    ``(n, K, …)``, in a fixed order → ``(n, …, H', W')`` (one filter: without the ``n`` axis if
    ``weights`` has no trailing axes).

    The order is the one XLA's CPU convolution used on one thread where this project's documented
    results were made (so they stand), written out so that it no longer depends on the thread
    count or the CPU's cache sizes, as a convolution's does (on two threads XLA split the sums
    over taps in two, and 4 of the 10,000 first-spike maps of the embedded MNIST images under the
    two shipped networks came out otherwise), and 12–24× faster than that convolution for the
    shipped front ends (DoG 0.37 → 0.03, box mean 3.65 → 0.15 ms per image on one core). Checked
    equal to it on one thread for one filter up to 21 × 21 taps and for several filters up to
    19 × 19 (``tests/test_frontend_order.py`` pins the order itself).
    Products are fused into the adds (FMA: one rounding per tap) except where written ``_unfused``.

    * several filters: one chain over the taps in row-major order, ``s ← s + x_k·w_k`` from ``s = +0``
      (the first product rounded alone, as the convolution did; only the sign of an all-zero
      window's sum can differ from it);
    * one filter: the first ``M = 16·⌊K/16⌋`` taps in 8 chains (chain ``c`` holds ``k ≡ c (mod 8)``),
      summed as ``((c0 + c1) + (c4 + c5)) + ((c2 + c3) + (c6 + c7))``; then, if 8 or more taps are
      left, the next 8 products summed the same way and added; then each product left, in turn.

    The sums are loops of short bodies (``lax.scan`` over window rows, or over the 8 chains): XLA's
    CPU code for one fused sum of more than ≈ 150 shifted views is ≈ 4× slower per tap, and a long
    single chain waits on each add.
    """
    kh, kw = window
    n_taps = kh * kw
    if weights.shape[0] > 1:
        return _row_major_chain(padded, window, weights)
    views = window_views(padded, kh, kw)
    term = lambda t: views[t] * weights[:, t]  # noqa: E731
    main = 16 * (n_taps // 16)
    total = _pairwise8(list(_lane_chains(padded, window, weights[:, :main]))) if main else None
    rest = main
    if n_taps - main >= 8:
        tail = _pairwise8([_unfused(term(t)) for t in range(main, main + 8)])
        total = tail if total is None else total + tail
        rest = main + 8
    for t in range(rest, n_taps):
        p = _unfused(term(t))
        total = p if total is None else total + p
    return total


def _view(padded: jax.Array, i, j, shape: tuple[int, int]) -> jax.Array:
    """``padded[…, i : i + H', j : j + W']`` (``i``, ``j`` may be traced)."""
    lead = padded.shape[:-2]
    return lax.dynamic_slice(padded, (0,) * len(lead) + (i, j), lead + shape)


def _row_major_chain(padded: jax.Array, window: tuple[int, int], weights: jax.Array) -> jax.Array:
    """``s ← s + view_k·weights[:, k]`` over the taps in row-major order from ``s = +0`` (the first
    product rounded once, as alone; a window whose products are all zeros may sum to ``+0`` where
    the product alone was ``-0``), each window row a step of a ``lax.scan`` (one compiled loop body
    of ``kw`` taps; as one fused chain of 169 taps, XLA's CPU code is ≈ 4× slower)."""
    kh, kw = window
    shape = (padded.shape[-2] - kh + 1, padded.shape[-1] - kw + 1)
    rows = weights.reshape(weights.shape[:1] + (kh, kw) + weights.shape[2:])

    def row(total, i_w):
        i, w = i_w
        for j in range(kw):
            total = total + _view(padded, i, j, shape) * w[:, j]
        return total, None

    out_shape = jnp.broadcast_shapes(rows[:, 0, 0].shape, padded.shape[:-2] + shape)
    zero = jnp.zeros(out_shape, jnp.result_type(padded, weights))
    return lax.scan(row, zero, (jnp.arange(kh), jnp.moveaxis(rows, 1, 0)))[0]


def _lane_chains(padded: jax.Array, window: tuple[int, int], weights: jax.Array) -> jax.Array:
    """The 8 chains ``c_l = Σ_{k ≡ l (mod 8)} view_k·weights[:, k]`` over the first ``M`` taps
    (``M = weights.shape[1]``, a multiple of 8), each from its first product on, stacked ``(8, …)``."""
    kh, kw = window
    shape = (padded.shape[-2] - kh + 1, padded.shape[-1] - kw + 1)
    per_lane = weights.shape[1] // 8
    taps = np.arange(weights.shape[1]).reshape(per_lane, 8).T  # (8, M/8): lane l holds l, l+8, …
    offsets = jnp.asarray(np.stack(np.divmod(taps, kw), axis=-1), jnp.int32)  # (8, M/8, 2) = (i, j)
    lane_weights = jnp.moveaxis(weights[:, taps], 1, 0)  # (8, n, M/8, *bcast)

    def chain(_, lane):
        ij, w = lane
        acc = _unfused(_view(padded, ij[0, 0], ij[0, 1], shape) * w[:, 0])
        for m in range(1, per_lane):
            acc = acc + _view(padded, ij[m, 0], ij[m, 1], shape) * w[:, m]
        return None, acc

    return lax.scan(chain, None, (offsets, lane_weights))[1]


def check_image(image) -> None:
    if jnp.ndim(image) != 2:
        raise InputError(f"expected one 2-D image (H, W), got an array of shape {jnp.shape(image)}; "
                         "use jax.vmap to encode a batch")


def dog_filter(image: jax.Array, kernels: jax.Array, padding: int, threshold: float | None = 50.0) -> jax.Array:
    """Filter a 2-D image with a ``(n, 1, K, K)`` bank; values ``< threshold`` become 0 → ``(n, H', W')``."""
    check_image(image)
    k = kernels.shape[-1]
    h, w = image.shape
    if k > h + 2 * padding or k > w + 2 * padding:
        raise InputError(f"DoG kernel of size {k} is larger than the padded image {(h + 2 * padding, w + 2 * padding)}")
    kernels = jnp.asarray(kernels, jnp.float32)
    xp = jnp.pad(jnp.asarray(image, jnp.float32), padding)
    out = tap_sum(xp, (k, k), kernels.reshape(kernels.shape[0], -1)[:, :, None, None])
    if threshold is not None:
        out = jnp.where(out < threshold, jnp.zeros((), out.dtype), out)
    return out


def local_normalization(x: jax.Array, radius: int, eps: float = 1e-12) -> jax.Array:
    """Divide each channel of ``(C, H, W)`` by its local mean over a ``(2r+1)²`` box (zero padding)."""
    if radius < 0:
        raise ConfigError(f"normalisation radius must be >= 0, got {radius!r}")
    if x.ndim != 3:
        raise InputError(f"local_normalization expects (C, H, W), got shape {x.shape}")
    return x / (box_mean(x, radius) + eps)


def box_mean(x: Float[Array, "*batch H W"], radius: int) -> Float[Array, "*batch H W"]:
    """Mean of every ``(2r+1)²`` box of ``(…, H, W)`` (zero padding, divisor ``(2r+1)²``), summed in a fixed order.

    ``Σ_k x_k·a`` over the ``K = (2r+1)²`` taps with ``a = 1/K`` (float32), in :func:`tap_sum`'s
    order for one filter.
    """
    size = 2 * radius + 1
    xp = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(radius, radius), (radius, radius)])
    a = jnp.full((1, size * size), jnp.float32(1.0) / jnp.float32(size * size))
    return tap_sum(xp, (size, size), a)


def _order_key(x: jax.Array) -> jax.Array:
    """int32 keys that order as the float32 values do (``-0.0`` as ``0.0``; NaN below everything,
    where a descending sort puts it)."""
    bits = lax.bitcast_convert_type(x + jnp.zeros((), x.dtype), jnp.int32)  # -0.0 + 0.0 = +0.0
    key = bits ^ ((bits >> 31) & jnp.int32(0x7FFFFFFF))
    return jnp.where(jnp.isnan(x), jnp.iinfo(jnp.int32).min, key)


#: Images per compiled front-end call: 64 (0.29 ms per image on one core of the benchmark machine,
#: 0.32 with 500 per call: the ranks' sorts run over the whole batch). Any size gives the same maps.
FRONT_END_CHUNK = 64

#: The largest ``g·n + i`` :func:`latency_ranks` packs into an int32 (beyond: a stable argsort).
_INT32_KEYS = 2**31 - 1


@functools.partial(jax.jit, static_argnames=('timesteps',))
def latency_ranks(x: jax.Array, timesteps: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """First-spike step of every element of ``x`` (``timesteps`` = never), plus ``nnz`` and ``bin_size``.

    Rank ``p`` (descending value, ties by lower flat index) spikes at step ``p // bin_size`` if
    ``p < T·bin_size`` and the value is not 0; so a value spikes by step ``t`` iff it is among the
    ``b_t = (t+1)·bin_size`` largest. Found without ranking every value (two single-key int32
    sorts, faster on a CPU than one stable sort that carries indices): ``v_t``, the ``b_t``-th
    largest value, takes every larger value and the first ``b_t − #{> v_t}`` of those equal to it
    by index; those are read off one sort of ``g·n + i`` over the values equal to a threshold
    (``g`` = how many thresholds are larger, ``i`` = the flat index).
    """
    timesteps = check_timesteps(timesteps)
    flat = x.reshape(-1)
    n = flat.shape[0]
    nnz = jnp.sum(flat != 0).astype(jnp.int32)
    bin_size = nnz // timesteps
    if (timesteps + 1) * n > _INT32_KEYS:  # g·n + i would not fit an int32
        order = jnp.argsort(-flat, stable=True)
        rank = jnp.zeros((n,), jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
        fires = (rank < timesteps * bin_size) & (flat != 0)
        first = jnp.where(fires, rank // jnp.maximum(bin_size, 1), timesteps).astype(jnp.int32)
        return first.reshape(x.shape), nnz, bin_size
    key = _order_key(flat)
    idx = jnp.arange(n, dtype=jnp.int32)
    bounds = jnp.arange(1, timesteps + 1, dtype=jnp.int32) * bin_size  # b_t, t = 0 … T−1
    thr = jnp.sort(key)[::-1][jnp.maximum(bounds - 1, 0)]  # (T,) the b_t-th largest, non-increasing
    above = key[None] > thr[:, None]  # (T, n)
    quota = bounds - jnp.sum(above, axis=1, dtype=jnp.int32)  # how many values equal to v_t it takes
    larger_thresholds = lambda v: jnp.sum(thr[:, None] > v[None], axis=0, dtype=jnp.int32)  # noqa: E731
    g = larger_thresholds(key)
    tied = (g < timesteps) & (key == thr[jnp.minimum(g, timesteps - 1)])
    by_group = jnp.sort(jnp.where(tied, g * n + idx, jnp.iinfo(jnp.int32).max))
    group = larger_thresholds(thr)  # g of each threshold's value
    start = jnp.searchsorted(by_group, group * n, side="left", method="scan_unrolled").astype(jnp.int32)
    last = by_group[jnp.clip(start + quota - 1, 0, n - 1)] - group * n  # index of the last equal one taken
    taken = (above | ((key[None] == thr[:, None]) & (idx[None] <= last[:, None]))) & (bounds[:, None] > 0)
    first = jnp.where(flat != 0, timesteps - jnp.sum(taken, axis=0, dtype=jnp.int32), timesteps)
    return first.reshape(x.shape), nnz, bin_size


def _ranks_where_no_tie_is_cut(x: jax.Array, timesteps: int) -> tuple[jax.Array, jax.Array]:
    """:func:`latency_ranks`' first-spike steps of one ``x`` by one int32 sort, and whether they are exact.

    A value spikes by step ``t`` iff it is among the ``b_t`` largest; when the threshold ``v_t``
    (the ``b_t``-th largest) is larger than the next value down (no tie is cut), that is ``x ≥ v_t``,
    and no tie order is needed. Returns ``(first, exact)``; ``exact`` is False where a tie is cut
    (then the steps are wrong and :func:`latency_ranks` must decide).
    """
    flat = x.reshape(-1)
    n = flat.shape[0]
    nnz = jnp.sum(flat != 0).astype(jnp.int32)
    bounds = jnp.arange(1, timesteps + 1, dtype=jnp.int32) * (nnz // timesteps)
    key = _order_key(flat)
    ascending = jnp.sort(key)
    thr = ascending[n - jnp.maximum(bounds, 1)]  # (T,) the b_t-th largest
    below = ascending[jnp.maximum(n - 1 - bounds, 0)]  # the (b_t + 1)-th largest
    exact = jnp.all((bounds == 0) | (bounds == n) | (below < thr))
    taken = (key[None] >= thr[:, None]) & (bounds[:, None] > 0)  # (T, n)
    first = jnp.where(flat != 0, timesteps - jnp.sum(taken, axis=0, dtype=jnp.int32), timesteps)
    return first.reshape(x.shape), exact


@functools.partial(jax.jit, static_argnames=('timesteps',))
def latency_ranks_batch(xs: Float[Array, "N *shape"], timesteps: int) -> Int[Array, "N *shape"]:
    """:func:`latency_ranks`' first-spike steps of every ``xs[i]``, faster: one int32 sort per map
    where no threshold cuts a tie (3 of 2,000 embedded MNIST maps of ``mozafari2019`` have a cut
    tie, none of ``kheradpisheh2018``), :func:`latency_ranks` for the maps where one does."""
    timesteps = check_timesteps(timesteps)
    first, exact = jax.vmap(lambda x: _ranks_where_no_tie_is_cut(x, timesteps))(xs)
    n = xs.shape[0]
    redo = jnp.nonzero(~exact, size=n, fill_value=0)[0]

    def fix(i, first):
        j = redo[i]
        return first.at[j].set(latency_ranks(xs[j], timesteps)[0])

    return lax.fori_loop(0, jnp.sum(~exact), fix, first)


def latency_to_wave(latency: jax.Array, timesteps: int, dtype=jnp.uint8) -> jax.Array:
    """Cumulative spike wave ``(T, ...)`` from a first-spike-step map (``T`` or more = never)."""
    timesteps = check_timesteps(timesteps)
    t = jnp.arange(timesteps, dtype=jnp.int32).reshape((timesteps,) + (1,) * latency.ndim)
    return (t >= latency.astype(jnp.int32)[None]).astype(dtype)


def wave_to_latency(wave: jax.Array, dtype=jnp.uint8) -> jax.Array:
    """First-spike step of a cumulative ``(T, ...)`` wave (``T`` = never), as ``T - Σ_t wave``."""
    t = wave.shape[0]
    return (t - jnp.sum(wave != 0, axis=0)).astype(dtype)


def intensity_to_latency(x: jax.Array, timesteps: int) -> jax.Array:
    """Cumulative latency coding ``(C, H, W) -> (T, C, H, W)`` carrying the intensities (SpykeTorch's Intensity2Latency).

    With fewer than ``T`` non-zero values (``bin_size == 0``) nothing spikes (the original raises).
    """
    first, _, _ = latency_ranks(x, timesteps)
    wave = latency_to_wave(first, timesteps, jnp.bool_)
    return jnp.where(wave, x[None], jnp.zeros((), x.dtype))


class DogLatencyEncoder(NamedTuple):
    """DoG filter bank → threshold → local normalisation → cumulative latency waves.

    ``encode(key, image)`` returns the ``(T, C, H, W)`` uint8 spike wave (the key is unused: the
    code is deterministic); ``latency(image)`` the ``(C, H, W)`` uint8 first-spike steps
    (``T`` = never), the compact form used to cache a dataset.
    """

    kernels: np.ndarray
    padding: int
    threshold: float | None
    norm_radius: int
    timesteps: int

    def filtered(self, image: jax.Array) -> jax.Array:
        """The thresholded DoG maps ``(C, H', W')`` of one image."""
        return dog_filter(image, self.kernels, self.padding, self.threshold)

    def normalized(self, image: jax.Array) -> jax.Array:
        return local_normalization(self.filtered(image), self.norm_radius)

    def latency(self, image: jax.Array) -> jax.Array:
        first, _, _ = latency_ranks(self.normalized(image), self.timesteps)
        return first.astype(jnp.uint8)

    def encode(self, key: jax.Array | None, image: jax.Array) -> jax.Array:
        del key
        return latency_to_wave(self.latency(image), self.timesteps)

    def latency_batch(self, images: jax.Array, chunk: int = FRONT_END_CHUNK) -> np.ndarray:
        """First-spike maps of a batch ``(N, H, W)`` → ``(N, C, H', W')`` uint8 (jitted, ``chunk``
        images per call, the last one padded with blank images: one compile).

        The same numbers as ``vmap(latency)``, with the ranks of :func:`latency_ranks_batch` (one
        sort per map where no threshold cuts a tie).
        """
        images = jnp.asarray(images)
        if images.ndim != 3:
            raise InputError(f"expected a batch of 2-D images (N, H, W), got shape {images.shape}")
        n = images.shape[0]
        chunk = max(1, min(int(chunk), n))
        fn = self.batched_latency()
        parts = []
        for i in range(0, n, chunk):
            part = images[i : i + chunk]
            if part.shape[0] < chunk:
                part = jnp.concatenate([part, jnp.zeros((chunk - part.shape[0],) + part.shape[1:], part.dtype)])
            parts.append(np.asarray(fn(part)))
        return np.concatenate(parts, axis=0)[:n]

    def batched_latency(self):
        """``images (N, H, W) → first-spike maps (N, C, H', W')`` uint8, as :meth:`latency_batch` runs
        it (compiled once per shape and setting, for every encoder alike)."""
        return functools.partial(_first_spike_maps, kernels=self.kernels, padding=self.padding, threshold=self.threshold,
                                 norm_radius=self.norm_radius, timesteps=self.timesteps)


@functools.partial(jax.jit, static_argnames=("padding", "threshold", "norm_radius", "timesteps"))
def _first_spike_maps(images: Float[Array, "N H W"], kernels: Float[Array, "C 1 K K"], padding: int,
                      threshold: float | None, norm_radius: int, timesteps: int) -> Int[Array, "N C Ho Wo"]:
    encoder = DogLatencyEncoder(kernels, padding, threshold, norm_radius, timesteps)
    # one image at a time (lax.map): its filter maps stay in the CPU's caches (≈ 20 % faster than vmap)
    return latency_ranks_batch(lax.map(encoder.normalized, images), timesteps).astype(jnp.uint8)


def dog_latency(
    dog: Sequence[Sequence[float]] = MOZAFARI_DOG,
    padding: int | None = None,
    threshold: float | None = 50.0,
    norm_radius: int = 8,
    timesteps: int = 15,
) -> DogLatencyEncoder:
    """DoG filters + local normalisation + cumulative intensity-to-latency spike waves (SpykeTorch)."""
    timesteps = check_timesteps(timesteps)
    if norm_radius < 0:
        raise ConfigError(f"norm_radius must be >= 0, got {norm_radius!r}")
    kernels = dog_filter_bank(dog)
    if padding is None:
        padding = kernels.shape[-1] // 2
    if padding < 0:
        raise ConfigError(f"padding must be >= 0, got {padding!r}")
    return DogLatencyEncoder(kernels, int(padding), threshold, int(norm_radius), timesteps)


def check_latency_encoder(encoder) -> None:
    """What the conv networks need of an encoder: ``latency_batch(images)`` or ``encode(key, image)``.

    (A cumulative ``[T, C, H, W]`` wave, deterministic: it is computed once per dataset, see
    :func:`latency_maps`.) A rate encoder that needs a step count (``poisson``) is refused.
    """
    if hasattr(encoder, "latency_batch"):
        return
    try:
        inspect.signature(encoder.encode).bind(None, np.zeros((1, 1), np.float32))
    except (AttributeError, TypeError, ValueError):
        raise ConfigError(f"the encoder {type(encoder).__name__} cannot feed the conv network: it needs "
                          f"encode(key, image) -> a cumulative spike wave [T, C, H, W] (a deterministic latency "
                          f"encoder such as 'dog-latency')") from None


def latency_maps(encoder, images: np.ndarray, chunk: int = FRONT_END_CHUNK) -> np.ndarray:
    """First-spike maps ``(N, C, H, W)`` uint8 of ``images`` ``(N, H, W)`` under any conv encoder.

    The conv networks cache their input once for every seed, so their encoder must be
    deterministic and give *cumulative* spike waves: an encoder with ``latency_batch`` (as
    :class:`DogLatencyEncoder`) is asked for the maps directly; any other
    :class:`snnjax.encoding.Encoder` is called as ``encode(None, image) -> [T, C, H, W]`` and its wave
    stored as first-spike steps (:func:`wave_to_latency`).
    """
    if hasattr(encoder, "latency_batch"):
        return encoder.latency_batch(images, chunk)
    images = jnp.asarray(images)
    if images.ndim != 3:
        raise InputError(f"expected a batch of 2-D images (N, H, W), got shape {images.shape}")
    fn = jax.jit(jax.vmap(lambda image: wave_to_latency(jnp.asarray(encoder.encode(None, image)))))
    parts = [np.asarray(fn(images[i : i + chunk])) for i in range(0, images.shape[0], chunk)]
    return np.concatenate(parts, axis=0)
