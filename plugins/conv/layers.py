"""Layers on spike waves: convolution, fire, max pooling and zero padding (SpykeTorch semantics).

Spike waves and potentials are time-major ``(T, C, H, W)``; conv weights are ``(out, in, kh, kw)``.
Every function works on one sample; batch with ``jax.vmap``. Shapes are static, so shape errors
are raised (as :class:`snnjax.errors.InputError`) while tracing, before anything runs.
"""

from __future__ import annotations

import functools

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from jaxtyping import Array, Float, Int

from snnjax.errors import ConfigError, InputError


def _check_wave(x: jax.Array, what: str = "spike wave") -> None:
    if x.ndim != 4:
        raise InputError(f"{what} must be time-major (T, C, H, W), got shape {x.shape}")


def to_nhwc(x: jax.Array) -> jax.Array:
    """``(..., C, H, W)`` → ``(..., H, W, C)`` (channels last: the layout XLA's CPU convolution is fast at)."""
    return jnp.moveaxis(x, -3, -1)


def to_nchw(x: jax.Array) -> jax.Array:
    """``(..., H, W, C)`` → ``(..., C, H, W)``."""
    return jnp.moveaxis(x, -1, -3)


def conv_nhwc(x: jax.Array, weight: jax.Array, padding: int = 0) -> jax.Array:
    """Cross-correlation of channels-last frames ``(N, H, W, C)`` with ``(out, C, kh, kw)`` weights → ``(N, H', W', out)``.

    Stride 1, zero ``padding``, float32 at full precision. XLA's CPU backend runs a convolution
    with these dimension numbers (NHWC input, HWIO kernel) on its Eigen fast path, also inside
    ``lax.scan``; in NCHW it falls back to a generic loop many times slower.
    """
    return lax.conv_general_dilated(
        x.astype(jnp.float32), jnp.transpose(weight.astype(jnp.float32), (2, 3, 1, 0)), window_strides=(1, 1),
        padding=[(padding, padding), (padding, padding)], dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=lax.Precision.HIGHEST,
    )


@functools.partial(jax.jit, static_argnames=('padding', 'impl'))
def conv(spikes: jax.Array, weight: jax.Array, padding: int = 0, impl: str = "dot") -> jax.Array:
    """Potentials ``(T, out, H', W')``: at every step, the cross-correlation of that step of the (cumulative) wave.

    Stride 1, no bias, optional zero ``padding``; spikes of any dtype are converted to float32.
    ``impl="dot"`` (default; the rounding every stored result was made with) gathers the ``kh·kw``
    shifted views and contracts them with one ``einsum``; ``impl="nhwc"`` transposes to channels
    last and runs :func:`conv_nhwc` (XLA's fast CPU convolution: the convolution alone 2–2.5× the
    dot form for layer 1 of the Mozafari network inside ``lax.scan``); ``impl="xla"`` runs
    ``lax.conv_general_dilated`` in NCHW (XLA's slow generic loop on CPU). All three agree to
    float32 rounding, not bit for bit: the order of the sums differs (up to 2.3e-5 on layer-1
    potentials).
    """
    _check_wave(spikes)
    if weight.ndim != 4:
        raise InputError(f"conv weight must be (out, in, kh, kw), got shape {weight.shape}")
    if weight.shape[1] != spikes.shape[1]:
        raise InputError(f"conv weight expects {weight.shape[1]} input maps, the spike wave has {spikes.shape[1]}")
    kh, kw = weight.shape[2:]
    h, w = spikes.shape[2] + 2 * padding, spikes.shape[3] + 2 * padding
    if kh > h or kw > w:
        raise InputError(f"conv kernel {(kh, kw)} is larger than its (padded) input {(h, w)}")
    x = spikes.astype(jnp.float32)
    wt = weight.astype(jnp.float32)
    if impl == "xla":
        return lax.conv_general_dilated(
            x, wt, window_strides=(1, 1), padding=[(padding, padding), (padding, padding)],
            dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=lax.Precision.HIGHEST,
        )
    if impl == "nhwc":
        return to_nchw(conv_nhwc(to_nhwc(x), wt, padding))
    if impl != "dot":
        raise ConfigError(f"conv impl must be 'nhwc', 'dot' or 'xla', got {impl!r}")
    if padding:
        x = jnp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = h - kh + 1, w - kw + 1
    cols = jnp.stack([x[:, :, i : i + ho, j : j + wo] for i in range(kh) for j in range(kw)], axis=2)
    return jnp.einsum("tckhw,fck->tfhw", cols, wt.reshape(wt.shape[0], wt.shape[1], kh * kw),
                      precision=lax.Precision.HIGHEST)


def window_views(padded: jax.Array, kh: int, kw: int) -> list[jax.Array]:
    """The ``kh·kw`` shifted ``(…, H−kh+1, W−kw+1)`` views of a (padded) ``(…, H, W)`` array, in
    row-major order over the window (view ``k = i·kw + j`` is offset ``(i, j)``)."""
    ho, wo = padded.shape[-2] - kh + 1, padded.shape[-1] - kw + 1
    return [padded[..., i : i + ho, j : j + wo] for i in range(kh) for j in range(kw)]


def latency_views(latency: Int[Array, "C H W"], kernel: tuple[int, int], padding: int,
                  timesteps: int) -> Int[Array, "C K Ho Wo"]:
    """The ``K = kh·kw`` shifted views of a first-spike map, ``(C, K, H', W')`` int32 (view ``k = i·kw + j``
    is the map shifted by ``(i, j)``); zero ``padding`` is ``timesteps`` (never spikes)."""
    if latency.ndim != 3:
        raise InputError(f"a first-spike map must be (C, H, W), got shape {latency.shape}")
    kh, kw = kernel
    lat = latency.astype(jnp.int32)
    if padding:
        lat = jnp.pad(lat, ((0, 0), (padding, padding), (padding, padding)), constant_values=int(timesteps))
    h, w = lat.shape[1:]
    if kh > h or kw > w:
        raise InputError(f"conv kernel {(kh, kw)} is larger than its (padded) input {(h, w)}")
    return jnp.stack(window_views(lat, kh, kw), axis=1)


def conv_latency(latency: Int[Array, "C H W"], weight: Float[Array, "F C kh kw"], timesteps: int,
                 padding: int = 0, min_features: int = 0) -> Float[Array, "T F Ho Wo"]:
    """:func:`conv` (``impl="dot"``) of the cumulative wave of a first-spike map, bit for bit, without the wave.

    The wave is ``x[t, c, y, x] = [latency[c, y, x] <= t]`` (zero ``padding`` = never spikes, latency
    ``T``), so the ``kh·kw`` shifted views of all ``T`` frames are ``[cols[c, k, h, w] <= t]`` with
    ``cols`` the shifted views of the *latency map* (built once, not ``T`` times):

        pot[t, f, h, w] = Σ_{c, k} W[f, c, k] · [cols[c, k, h, w] <= t]

    The contraction is the dot form's ``einsum`` on an operand of the same shape ``(T, C, kh·kw, H', W')``,
    so the sums run in the same order and round the same (potentials in weight units, e.g. mV).

    ``min_features``: with fewer filters than that, the product runs with zero filters appended (and
    their rows dropped). On CPU (JAX 0.10), XLA's product for layer 1 of the Mozafari network sums each
    potential in one chain over the ``C·kh·kw`` terms, in order, once the weight side has 51 rows or
    more (2 seeds' filters or more, vmapped on one shared input: the form of every stored result),
    and in another order with 50 or fewer (one seed alone); ``ConvPipeline.propagate`` passes 51
    (``pipeline.ALONE_MIN_ROWS``) where a seed is alone, so that its results do not depend on how many seeds run beside it
    (``tests/test_conv_inference.py``).
    """
    timesteps = int(timesteps)
    if latency.ndim != 3:
        raise InputError(f"a first-spike map must be (C, H, W), got shape {latency.shape}")
    if weight.ndim != 4 or weight.shape[1] != latency.shape[0]:
        raise InputError(f"conv weight (out, {latency.shape[0]}, kh, kw) expected for {latency.shape[0]} input maps, "
                         f"got shape {weight.shape}")
    kh, kw = weight.shape[2:]
    cols = latency_views(latency, (kh, kw), padding, timesteps)  # (C, K, H', W')
    steps = jnp.arange(timesteps, dtype=jnp.int32).reshape(timesteps, 1, 1, 1, 1)
    on = (cols[None] <= steps).astype(jnp.float32)  # (T, C, K, H', W'): the dot form's shifted views
    wt = weight.astype(jnp.float32)
    f = wt.shape[0]
    if f < int(min_features):
        wt = jnp.concatenate([wt, jnp.zeros((int(min_features) - f,) + wt.shape[1:], wt.dtype)])
    pot = jnp.einsum("tckhw,fck->tfhw", on, wt.reshape(wt.shape[0], wt.shape[1], kh * kw),
                     precision=lax.Precision.HIGHEST)
    return pot[:, :f] if pot.shape[1] != f else pot


def threshold(potentials: jax.Array, theta: float | jax.Array | None = None) -> jax.Array:
    """Thresholded potentials: ``pot`` where ``pot > theta`` (strictly), else 0.

    ``theta=None`` ("no threshold"): every step but the last is zeroed and the last step is kept
    untouched (also negative values), as in SpykeTorch.
    """
    if theta is None:
        mask = jnp.arange(potentials.shape[0]) == potentials.shape[0] - 1
        mask = mask.reshape((-1,) + (1,) * (potentials.ndim - 1))
        return jnp.where(mask, potentials, jnp.zeros((), potentials.dtype))
    return jnp.where(potentials > theta, potentials, jnp.zeros((), potentials.dtype))


def fire(potentials: jax.Array, theta: float | jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """``(spikes, thresholded)``: spikes = sign of the thresholded potentials (float; −1 possible)."""
    th = threshold(potentials, theta)
    return jnp.sign(th), th


def _pair(v: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(v, (int,)) or (hasattr(v, "__index__") and not isinstance(v, Sequence)):
        v = (int(v), int(v))
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ConfigError(f"{name} must be an int or a pair, got {v!r}")
    return v  # type: ignore[return-value]


def pool(x: jax.Array, kernel: int | Sequence[int], stride: int | Sequence[int] | None = None,
         padding: int | Sequence[int] = 0) -> jax.Array:
    """Max pooling over space of ``(T, C, H, W)`` (torch ``max_pool2d``: padding acts as −inf).

    On a cumulative spike wave the earliest spike in each window wins. ``stride`` defaults to
    ``kernel``.
    """
    _check_wave(x, "pooling input")
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(kernel if stride is None else stride, "stride")
    ph, pw = _pair(padding, "padding")
    if min(kh, kw, sh, sw) <= 0 or min(ph, pw) < 0:
        raise ConfigError(f"pooling needs positive kernel/stride and non-negative padding, got {kernel}, {stride}, {padding}")
    if kh > x.shape[2] + 2 * ph or kw > x.shape[3] + 2 * pw:
        raise InputError(f"pooling kernel {(kh, kw)} is larger than its (padded) input {x.shape[2:]}")
    if jnp.issubdtype(x.dtype, jnp.floating):
        init = jnp.array(-jnp.inf, x.dtype)
    elif x.dtype == jnp.bool_:
        init = jnp.array(False)
    else:
        init = jnp.array(jnp.iinfo(x.dtype).min, x.dtype)
    return lax.reduce_window(x, init, lax.max, (1, 1, kh, kw), (1, 1, sh, sw),
                             ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def pad(x: jax.Array, padding: int | Sequence[int], value: float = 0) -> jax.Array:
    """Pad the two spatial dims of ``(..., H, W)``; ``padding`` is an int or (left, right, top, bottom) as in torch."""
    if isinstance(padding, int):
        padding = (padding,) * 4
    left, right, top, bottom = (int(p) for p in padding)
    if min(left, right, top, bottom) < 0:
        raise ConfigError(f"padding must be >= 0, got {padding!r}")
    widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
    return jnp.pad(x, widths, constant_values=jnp.asarray(value, x.dtype))
