"""Many seeds in one program: vmap equals per-seed runs; sharding changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.seeds import run_seeds, seed_keys


def noisy_leaky_run(key, rates):
    """A stochastic per-seed program: Bernoulli inputs drive a leaky integrator for 200 steps."""

    def step(v, k):
        spikes = jax.random.uniform(k, rates.shape) < rates * 0.1e-3 * 50
        v = 0.9 * v + spikes.astype(v.dtype)
        return v, (v > 1.5).sum()

    v, counts = jax.lax.scan(step, jnp.zeros_like(rates), jax.random.split(key, 200))
    return v, counts.sum()


RATES = jnp.linspace(0.0, 60.0, 16)


def test_vmapped_run_equals_per_seed_runs():
    keys = seed_keys(3, 5)
    batched_v, batched_c = run_seeds(noisy_leaky_run, keys, RATES)
    for i in range(5):
        v, c = jax.jit(noisy_leaky_run)(keys[i], RATES)
        np.testing.assert_array_equal(np.asarray(batched_v[i]), np.asarray(v))
        assert int(batched_c[i]) == int(c)


def test_same_seed_same_result_and_prefix_stability():
    a = run_seeds(noisy_leaky_run, seed_keys(7, 4), RATES)
    b = run_seeds(noisy_leaky_run, seed_keys(7, 4), RATES)
    c = run_seeds(noisy_leaky_run, seed_keys(7, 2), RATES)
    np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
    np.testing.assert_array_equal(np.asarray(a[0][:2]), np.asarray(c[0]))
    assert not np.array_equal(np.asarray(a[0][0]), np.asarray(a[0][1]))


def test_two_device_sharded_run_equals_unsharded():
    script = textwrap.dedent(
        """
        import jax, numpy as np
        assert len(jax.devices()) == 2, jax.devices()
        from tests.test_seeds import noisy_leaky_run, RATES
        from snnjax.seeds import run_seeds, seed_keys, seed_mesh
        keys = seed_keys(3, 6)
        assert seed_mesh(6) is not None
        sharded = run_seeds(noisy_leaky_run, keys, RATES)
        assert len(sharded[0].sharding.device_set) == 2, sharded[0].sharding
        single = run_seeds(noisy_leaky_run, keys, RATES, devices=jax.devices()[:1])
        np.testing.assert_array_equal(np.asarray(sharded[0]), np.asarray(single[0]))
        np.testing.assert_array_equal(np.asarray(sharded[1]), np.asarray(single[1]))
        print("OK")
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout


def test_a_seed_range_gets_the_keys_of_the_same_seeds_in_a_larger_run():
    whole = jax.random.key_data(seed_keys(3, 6))
    np.testing.assert_array_equal(np.asarray(jax.random.key_data(seed_keys(3, 2, first=4))), np.asarray(whole[4:6]))
    # and each key is fold_in(PRNGKey(seed), i) of its seed index i, whatever the range
    for i in range(6):
        want = np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.PRNGKey(3), i)))
        np.testing.assert_array_equal(np.asarray(whole[i]), want)
        np.testing.assert_array_equal(np.asarray(jax.random.key_data(seed_keys(3, 1, first=i)))[0], want)
    assert len({tuple(np.asarray(k).tolist()) for k in whole}) == 6
