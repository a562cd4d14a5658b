"""Many seeds in one program: ``jax.vmap`` over keys, sharded over devices.

This module is the only one that knows about devices. A per-seed function
``fn(key, *args)`` becomes ``run_seeds(fn, keys, *args)``: it is vmapped over
the leading axis of ``keys``; when more than one device is visible and the seed
count divides evenly, the keys are placed with a ``NamedSharding`` over a 1-D
mesh named ``"seed"`` so XLA splits the seed axis over the devices (the other
arguments are replicated). Across machines the same program runs under
``jax.distributed.initialize()``; ``jax.devices()`` then lists every device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def seed_keys(seed: int, n_seeds: int, first: int = 0) -> jax.Array:
    """The keys of seeds ``first, …, first + n_seeds − 1`` of the family ``seed``.

    Seed ``i`` is ``fold_in(PRNGKey(seed), i)`` whatever else runs beside it:
    the first seeds of a larger run get the same keys, and a 32-seed run can
    be split into runs of seeds 0–15 and 16–31 (``first=16``) in two processes
    with the same results (``snnjax run --first-seed``, ``snnjax merge``).
    """
    if first < 0:
        raise ValueError(f"first seed must be >= 0, got {first}")
    if first + n_seeds > 2**32:
        raise ValueError(f"seed indices {first}…{first + n_seeds - 1} do not fit the 32 bits of jax.random.fold_in "
                         f"(indices ≥ 2**32 would silently reuse the keys of low seeds)")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in 0…2**32 − 1, got {seed} (PRNGKey wraps larger seeds onto small ones)")
    base = jax.random.PRNGKey(seed)
    indices = np.arange(first, first + n_seeds, dtype=np.uint32)  # exact: checked < 2**32 above
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.asarray(indices))


def seed_mesh(n_seeds: int, devices: list | None = None) -> Mesh | None:
    """A 1-D mesh over the devices for ``n_seeds`` seeds, or ``None`` for one device.

    Uses the largest device count that divides ``n_seeds``.
    """
    devices = list(devices if devices is not None else jax.devices())
    n = len(devices)
    while n > 1 and n_seeds % n:
        n -= 1
    if n <= 1:
        return None
    return Mesh(np.array(devices[:n]), ("seed",))


def shard_seeds(tree: Any, mesh: Mesh | None) -> Any:
    """Place every leaf's leading (seed) axis over ``mesh`` (no-op without a mesh)."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, PartitionSpec("seed"))
    return jax.device_put(tree, sharding)


def run_seeds(fn: Callable[..., Any], keys: jax.Array, *args: Any, jit: bool = True, devices: list | None = None) -> Any:
    """Run ``fn(key, *args)`` for every key in ``keys`` as one vmapped program.

    Args:
        fn: a pure per-seed function.
        keys: ``[n_seeds, ...]`` PRNG keys (see :func:`seed_keys`).
        *args: shared arguments (config pytrees, data), broadcast to every seed.
        jit: compile the vmapped function (default).
        devices: devices to shard the seed axis over (default: all visible).

    Returns:
        ``fn``'s output with a leading seed axis on every leaf.
    """
    mesh = seed_mesh(keys.shape[0], devices)
    batched = jax.vmap(fn, in_axes=(0,) + (None,) * len(args))
    if jit:
        batched = jax.jit(batched)
    return batched(shard_seeds(keys, mesh), *args)
