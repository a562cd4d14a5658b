"""snnjax.threefry draws equal jax.random's, bit for bit, and fall back where they cannot."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import threefry

SHAPES = [(), (1,), (7,), (3, 5), (200, 25, 5, 5), (1001,)]


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    as_bits = np.dtype(f"u{a.dtype.itemsize}")
    np.testing.assert_array_equal(a.view(as_bits), b.view(as_bits))


@pytest.mark.parametrize("shape", SHAPES)
def test_bits_uniform_normal_equal_jax_random(shape):
    for seed in (0, 1, 2**31 + 5):
        key = jax.random.PRNGKey(seed)
        _same(jax.jit(lambda k: threefry.bits(k, shape))(key), jax.random.bits(key, shape, jnp.uint32))
        _same(jax.jit(lambda k: threefry.uniform(k, shape))(key), jax.random.uniform(key, shape))
        _same(jax.jit(lambda k: threefry.uniform(k, shape, minval=0.2, maxval=0.8))(key),
              jax.random.uniform(key, shape, minval=0.2, maxval=0.8))
        _same(jax.jit(lambda k: threefry.normal(k, shape))(key), jax.random.normal(key, shape))


@pytest.mark.parametrize("chunks", [1, 3, 8])
def test_any_chunk_count_gives_the_same_draw(chunks):
    key = jax.random.PRNGKey(7)
    _same(threefry.normal(key, (10, 13), chunks=chunks), jax.random.normal(key, (10, 13)))


def test_vmapped_keys_split_keys_and_typed_keys():
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    _same(jax.jit(jax.vmap(lambda k: threefry.normal(k, (50, 9))))(keys),
          jax.vmap(lambda k: jax.random.normal(k, (50, 9)))(keys))
    typed = jax.random.key(11)
    _same(threefry.normal(typed, (33,)), jax.random.normal(typed, (33,)))


def test_inside_a_scan_it_follows_the_split_keys():
    def walk(draw):
        def body(carry, _):
            w, key = carry
            key, sub = jax.random.split(key)
            return (jnp.clip(w + 4e-4 * draw(sub, w.shape), 0.2, 0.8), key), None
        return jax.jit(lambda w, k: jax.lax.scan(body, (w, k), None, length=5)[0][0])

    w = jnp.full((20, 30), 0.5, jnp.float32)
    key = jax.random.PRNGKey(0)
    _same(walk(threefry.normal)(w, key), walk(jax.random.normal)(w, key))


def test_other_prng_implementations_and_dtypes_fall_back_to_jax_random():
    rbg = jax.random.key(5, impl="rbg")
    _same(threefry.normal(rbg, (17,)), jax.random.normal(rbg, (17,)))
    _same(threefry.bits(rbg, (17,)), jax.random.bits(rbg, (17,), jnp.uint32))
    key = jax.random.PRNGKey(5)
    _same(threefry.normal(key, (17,), jnp.float16), jax.random.normal(key, (17,), jnp.float16))
    with jax.threefry_partitionable(False):  # the old counter layout draws other numbers: jax's own path
        _same(threefry.normal(key, (5, 7)), jax.random.normal(key, (5, 7)))
        _same(threefry.bits(key, (5, 7)), jax.random.bits(key, (5, 7), jnp.uint32))
    _same(threefry.uniform(key, (0, 3)), jax.random.uniform(key, (0, 3)))


def test_the_hash_matches_the_published_known_answer():
    # Threefry-2x32, 20 rounds, known-answer vector of the Random123 suite (key and counter all ones)
    ones = jnp.uint32(0xFFFFFFFF)
    x1, x2 = threefry.threefry_2x32(ones, ones, jnp.array([0xFFFFFFFF], jnp.uint32), jnp.array([0xFFFFFFFF], jnp.uint32))
    assert (int(x1[0]), int(x2[0])) == (0x1CB996FC, 0xBB002BE7)


def test_threefry_keys_take_the_unrolled_hash_and_other_keys_jax_random():
    """The fast path is really taken (a silent fallback would be correct but slow): its program has
    no ``random_bits`` of jax's own; a key of another implementation has."""
    def uses_jax_random(key):
        return "random_bits" in str(jax.make_jaxpr(lambda k: threefry.normal(k, (8,)))(key))

    assert not uses_jax_random(jax.random.PRNGKey(0))
    assert not uses_jax_random(jax.random.key(0))
    assert uses_jax_random(jax.random.key(0, impl="rbg"))
    batched = jax.make_jaxpr(jax.vmap(lambda k: threefry.normal(k, (8,))))(jax.random.split(jax.random.PRNGKey(0), 3))
    assert "random_bits" not in str(batched)


def test_draws_and_blocked_quantiles_of_seeds_sharded_over_two_devices_equal_one_device():
    """The Langevin noise and the blocked quantile update, vmapped over 2 seeds placed on 2 (forced host)
    devices as the run loop places them, give the one-device bits."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import jax, numpy as np\n"
        "assert len(jax.devices()) == 2, jax.devices()\n"
        "from snnjax import threefry\n"
        "from snnjax.quantiles import quantiles_init, quantiles_update\n"
        "from snnjax.seeds import seed_keys, seed_mesh, shard_seeds\n"
        "probs = (0.1, 0.9)\n"
        "def one(key):\n"
        "    def body(c, k):\n"
        "        w, st = c\n"
        "        w = w + 0.01 * threefry.normal(k, w.shape)\n"
        "        return (w, quantiles_update(st, w, probs, block=700)), None\n"
        "    w0 = jax.numpy.zeros((40, 250))\n"
        "    return jax.lax.scan(body, (w0, quantiles_init(w0.shape, probs)), jax.random.split(key, 8))[0]\n"
        "f = jax.jit(jax.vmap(one))\n"
        "keys = seed_keys(0, 2)\n"
        "sharded = shard_seeds(keys, seed_mesh(2))\n"
        "assert len(sharded.sharding.device_set) == 2\n"
        "a, b = f(keys), f(sharded)\n"
        "assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))\n"
        "print('OK')\n"
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("OK"), out.stdout + out.stderr
