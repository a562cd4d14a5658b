r"""``jax.random``'s Threefry draws, the same bits, with the hash unrolled.

On CPU, jax lowers the Threefry-2x32 hash (Salmon et al., 2011: 20 rounds of add, rotate
and xor on pairs of 32-bit words, a key injection after every 4) as a loop of 5 iterations
over the whole output arrays, which keeps compilation short but makes large draws slow: for
the 1.25 M weights of the conv decision layer, ``jax.random.bits`` took ≈ 9× as long as
:func:`bits` here, and ``jax.random.normal`` ≈ 2× as long as :func:`normal`
(``benchmarks/langevin_step.py`` times the Langevin noise both ways).
Noise on every weight after every image — the Langevin trajectory of the ``continual``
experiment — is dominated by that draw.

:func:`bits`, :func:`uniform` and :func:`normal` return exactly what ``jax.random.bits``,
``jax.random.uniform`` and ``jax.random.normal`` return for the same key (32-bit draws, the
``jax_threefry_partitionable`` counter layout that jax uses by default); ``tests/test_threefry.py``
checks it bit for bit, so a jax release that changes its draws fails there, not silently in a
run. Where the arguments leave that ground — a key of another PRNG implementation, the old
counter layout, a dtype other than ``float32``, more than ``2**32`` values — they call
``jax.random`` itself.

The hash runs over the output in ``chunks`` blocks of a loop: XLA's CPU compiler then keeps it
out of the float transform that follows (fused into one kernel, hash and ``erf_inv`` took
about as long as ``jax.random.normal``).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, UInt32

__all__ = ["bits", "normal", "uniform", "threefry_2x32"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jax.Array, d: int) -> jax.Array:
    return lax.shift_left(x, np.uint32(d)) | lax.shift_right_logical(x, np.uint32(32 - d))


def threefry_2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array, x2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 hash (20 rounds) of the counter words ``(x1, x2)`` under the key ``(k1, k2)``.

    All ``uint32``; ``x1``, ``x2`` of one shape. Integer arithmetic modulo ``2**32``, so every
    evaluation order gives the same words as jax's own lowering.
    """
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for block in range(5):
        for r in _ROTATIONS[block % 2]:
            x1 = x1 + x2
            x2 = x1 ^ _rotate_left(x2, r)
        x1 = x1 + ks[(block + 1) % 3]
        x2 = x2 + ks[(block + 2) % 3] + np.uint32(block + 1)
    return x1, x2


def _key_words(key: jax.Array) -> jax.Array | None:
    """The two ``uint32`` words of a Threefry key, or ``None`` for any other kind of key."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != () or "threefry2x32" not in str(jax.random.key_impl(key)):
            return None
        return jax.random.key_data(key)
    raw_threefry = getattr(jax.config, "jax_default_prng_impl", None) == "threefry2x32"
    if key.dtype != jnp.uint32 or key.shape != (2,) or not raw_threefry:
        return None
    return key


def _size(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _fast_path(key: jax.Array, shape: Sequence[int]) -> jax.Array | None:
    # jax's default counter layout; a jax without the flag (or with it off) takes jax.random's own path
    if not getattr(jax.config, "jax_threefry_partitionable", False) or not 0 < _size(shape) < 2**32:
        return None
    return _key_words(key)


def _bits(words: jax.Array, shape: tuple[int, ...], chunks: int) -> jax.Array:
    n = _size(shape)
    m = -(-n // chunks)
    k1, k2 = words[0], words[1]
    high = jnp.zeros((m,), jnp.uint32)  # the counters' upper words: 0 below 2**32 values

    def block(i, out):
        start = (i * m).astype(jnp.uint32)
        b1, b2 = threefry_2x32(k1, k2, high, lax.iota(jnp.uint32, m) + start)
        return lax.dynamic_update_slice(out, b1 ^ b2, (i * m,))

    out = lax.fori_loop(0, chunks, block, jnp.zeros((m * chunks,), jnp.uint32))
    return out[:n].reshape(shape)


def bits(key: jax.Array, shape: Sequence[int], chunks: int = 2) -> UInt32[Array, "..."]:
    """``jax.random.bits(key, shape)`` (``uint32``), bit for bit."""
    shape = tuple(int(d) for d in shape)
    words = _fast_path(key, shape)
    if words is None:
        return jax.random.bits(key, shape, jnp.uint32)
    return _bits(words, shape, chunks)


def _unit_floats(b: jax.Array) -> jax.Array:
    """Uniform ``float32`` in ``[0, 1)`` from 32 random bits: the top 23 as the mantissa of ``[1, 2)``, minus 1."""
    mantissa = lax.shift_right_logical(b, np.uint32(32 - 23)) | np.uint32(0x3F800000)
    return lax.bitcast_convert_type(mantissa, jnp.float32) - np.float32(1.0)


def uniform(key: jax.Array, shape: Sequence[int], dtype=jnp.float32, minval: float = 0.0, maxval: float = 1.0,
            chunks: int = 2) -> Float[Array, "..."]:
    """``jax.random.uniform(key, shape, dtype, minval, maxval)``, bit for bit (scalar bounds)."""
    shape = tuple(int(d) for d in shape)
    words = _fast_path(key, shape)
    if words is None or jnp.dtype(dtype) != jnp.float32 or np.ndim(minval) or np.ndim(maxval):
        return jax.random.uniform(key, shape, dtype, minval, maxval)
    return _uniform(words, shape, minval, maxval, chunks)


def _uniform(words: jax.Array, shape: tuple[int, ...], minval, maxval, chunks: int) -> jax.Array:
    lo, hi = jnp.float32(minval), jnp.float32(maxval)
    return lax.max(lo, _unit_floats(_bits(words, shape, chunks)) * (hi - lo) + lo)


def normal(key: jax.Array, shape: Sequence[int], dtype=jnp.float32, chunks: int = 2) -> Float[Array, "..."]:
    r"""``jax.random.normal(key, shape, dtype)``, bit for bit.

    :math:`\sqrt{2}\,\mathrm{erf}^{-1}(u)` with :math:`u` uniform in :math:`(-1, 1)` (:func:`uniform`).
    """
    shape = tuple(int(d) for d in shape)
    words = _fast_path(key, shape)
    if words is None or jnp.dtype(dtype) != jnp.float32:
        return jax.random.normal(key, shape, dtype)
    u = _uniform(words, shape, np.nextafter(np.float32(-1.0), np.float32(0.0)), 1.0, chunks)
    return lax.mul(np.float32(np.sqrt(2)), lax.erf_inv(u))
