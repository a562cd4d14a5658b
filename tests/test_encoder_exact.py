"""Exact Poisson input probabilities and tight statistical checks of the two sparse samplers.

The rate tests in ``test_neurons.py`` allow ±5 σ of a small sample (about ±10–20 % of the rate); these pin
the probability to the formula exactly and test the samplers with enough cells that a rate off by 2 % fails.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax_plugins.encoders import poisson, sample_candidates, sample_table


@pytest.mark.parametrize("dt_ms, max_rate_hz", [(0.1, 63.75), (0.5, 63.75), (0.25, 100.0)])
def test_spike_probability_is_pixel_over_255_times_max_rate_times_dt(dt_ms, max_rate_hz):
    """``p = pixel/255 · max_rate_hz · dt`` (dt in s), to float32 rounding, for every pixel value."""
    enc = poisson(dt_ms=dt_ms, max_rate_hz=max_rate_hz)
    pixels = np.arange(256, dtype=np.float32)
    got = np.asarray(enc.probabilities(jnp.asarray(pixels)), np.float64)
    want = pixels.astype(np.float64) / 255.0 * max_rate_hz * dt_ms * 1e-3
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=0)
    # the thesis' rule: pixel 255 at dt 0.1 ms is 63.75 Hz · 0.1 ms
    assert got[255] == pytest.approx(max_rate_hz * dt_ms * 1e-3, rel=1e-7)
    np.testing.assert_allclose(np.asarray(enc.probabilities(jnp.asarray(pixels), scale=2.0)), 2 * want, rtol=2e-7)


def test_dense_raster_is_a_uniform_below_the_probability():
    """The dense encoder spikes exactly where ``uniform(key, (T, n)) < p``: Brian's PoissonGroup rule."""
    enc = poisson(dt_ms=0.5)
    img = jnp.asarray(np.linspace(0, 255, 50), jnp.float32)
    key = jax.random.key(7)
    raster = np.asarray(enc.encode(key, img, 300))
    u = np.asarray(jax.random.uniform(key, (300, 50), dtype=jnp.float32))
    np.testing.assert_array_equal(raster, u < np.asarray(enc.probabilities(img))[None, :])


# The samplers draw the same Bernoulli process as the dense raster, from other random numbers; their
# spike counts are tested against the exact expectation with 10^4–3·10^4 expected spikes per level, so the
# tolerance (5 σ of the count, ≤ 2.9 % at p = 0.03) rejects a rate off by ≥ 3 % (e.g. ×1.10 or ×0.92).
P_LEVELS = np.array([0.002, 0.01, 0.03], np.float32)
N_PER_LEVEL, N_STEPS = 200, 5000


def _probabilities():
    return jnp.asarray(np.r_[np.repeat(P_LEVELS, N_PER_LEVEL), np.zeros(40, np.float32)])


def _assert_counts_match(counts):
    counts = np.asarray(counts)
    assert counts[len(P_LEVELS) * N_PER_LEVEL:].sum() == 0, "an input with p = 0 spiked"
    for level, p in enumerate(P_LEVELS.astype(np.float64)):
        c = counts[level * N_PER_LEVEL:(level + 1) * N_PER_LEVEL].sum()
        n = N_PER_LEVEL * N_STEPS
        z = (c - n * p) / np.sqrt(n * p * (1 - p))
        assert abs(z) < 5, f"p={p}: {c} spikes, expected {n * p:.0f} (z = {z:.1f})"


def test_sample_table_counts_are_exactly_bernoulli():
    p = _probabilities()
    table = sample_table(jax.random.key(11), p, N_STEPS, 64, 4096)
    assert int(table.dropped) == 0
    idx = np.asarray(table.idx).ravel()
    _assert_counts_match(np.bincount(idx[idx < p.shape[0]], minlength=p.shape[0]))


def test_sample_candidates_counts_are_exactly_bernoulli():
    p = _probabilities()
    n_cells = N_STEPS * int(np.sum(np.asarray(p) > 0))
    c = sample_candidates(jax.random.key(12), p, N_STEPS, int(n_cells * 0.03 * 1.2), 16)
    assert int(c.known_until) == n_cells  # the capacity covered the whole grid
    keep = np.asarray(c.idx)[np.asarray(c.pos) < n_cells]
    _assert_counts_match(np.bincount(keep[keep < p.shape[0]], minlength=p.shape[0]))
