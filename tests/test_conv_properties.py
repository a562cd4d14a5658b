"""Property tests of k-winners-take-all (snnjax_plugins.conv.inhibition.k_winners)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from snnjax_plugins.conv import inhibition as I
from snnjax_plugins.conv import layers as L

T, FEAT, H, W = 5, 4, 5, 6
KMAX = 6

# one compile: k is padded to KMAX (the greedy selection is sequential, so prefixes are the
# k-winner answers), the radius is traced
_select = jax.jit(lambda pot, spk, r: I.winners_from_scores(I.winner_scores(pot, spk), KMAX, r))
_k1_nospk = jax.jit(lambda pot: I.k_winners(pot, 1, 0))


@st.composite
def cumulative_potentials(draw):
    """Integer increments (many ties) accumulated over time → non-decreasing potentials, thresholded."""
    seed = draw(st.integers(0, 2**31 - 1))
    density = draw(st.sampled_from([0.1, 0.3, 0.6]))
    rng = np.random.default_rng(seed)
    inc = rng.integers(0, 4, (T, FEAT, H, W)) * (rng.random((T, FEAT, H, W)) < density)
    pot = np.cumsum(inc, axis=0).astype(np.float32)
    theta = draw(st.sampled_from([0.0, 2.0, 4.0]))
    spk, thp = L.fire(jnp.asarray(pot), theta)
    return thp, spk


def _first_step(spk):
    s = np.asarray(spk)
    return (T - s.sum(0)).astype(int)  # T = never


@settings(max_examples=40, deadline=None)
@given(cumulative_potentials(), st.integers(1, KMAX), st.integers(0, 3))
def test_k_winners_invariants(data, k, radius):
    pot, spk = data
    res = _select(pot, spk, radius)
    idx, valid = np.asarray(res.index)[:k], np.asarray(res.valid)[:k]
    # valid winners form a prefix, padded with -1 rows
    n = int(valid.sum())
    assert valid[:n].all() and not valid[n:].any()
    assert (idx[n:] == -1).all()
    win = idx[:n]
    # each feature wins at most once
    assert len(set(win[:, 0].tolist())) == n
    # no two winners within each other's (2r+1)^2 window
    if radius > 0:
        for a in range(n):
            for b in range(a + 1, n):
                assert max(abs(win[a, 1] - win[b, 1]), abs(win[a, 2] - win[b, 2])) > radius
    # winners come in order: earlier first spike first; same step → larger potential at that step first
    first = _first_step(spk)
    p = np.asarray(pot)
    keys = [(first[f, r, c], -p[first[f, r, c], f, r, c]) for f, r, c in win]
    assert keys == sorted(keys)
    # every winner spiked; a silent pattern gives no winner at all
    assert all(first[f, r, c] < T for f, r, c in win)
    if (first == T).all():
        assert n == 0
    else:
        assert n >= 1


@settings(max_examples=40, deadline=None)
@given(cumulative_potentials())
def test_k1_r0_is_global_earliest_then_largest(data):
    pot, spk = data
    res = _select(pot, spk, 0)
    first = _first_step(spk)
    p = np.asarray(pot)
    if (first == T).all():
        assert not bool(res.valid[0])
        return
    # reference: earliest first spike, then the largest potential at that step, then the lowest flat index
    cand = [(first[f, r, c], -p[first[f, r, c], f, r, c], f, r, c)
            for f in range(FEAT) for r in range(H) for c in range(W) if first[f, r, c] < T]
    best = min(cand)
    np.testing.assert_array_equal(np.asarray(res.index[0]), best[2:])
    # with radius 0 the k winners are the k best features by the same key, one per feature
    per_feature = {}
    for key in sorted(cand):
        per_feature.setdefault(key[2], key)
    expected = sorted(per_feature.values())[:KMAX]
    n = int(res.valid.sum())
    assert n == len(expected)
    np.testing.assert_array_equal(np.asarray(res.index[:n]), np.array([e[2:] for e in expected]).reshape(n, 3))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, T - 2), st.integers(1, T - 1 - 0), st.floats(1.0, 50.0), st.floats(51.0, 1e4))
def test_earlier_spike_beats_larger_potential(early, delay, small, big):
    late = min(early + delay, T - 1)
    if late == early:
        late = early + 1
    pot = np.zeros((T, FEAT, H, W), np.float32)
    pot[early:, 1, 2, 3] = small          # fires first, small potential
    pot[late:, 0, 0, 0] = big             # fires later, much larger potential, lower flat index
    res = _k1_nospk(jnp.asarray(pot))
    np.testing.assert_array_equal(np.asarray(res.index[0]), [1, 2, 3])
    both = _select(jnp.asarray(pot), jnp.sign(jnp.asarray(pot)), 0)
    np.testing.assert_array_equal(np.asarray(both.index[:2]), [[1, 2, 3], [0, 0, 0]])


def test_k_winners_vmaps_over_samples():
    rng = np.random.default_rng(0)
    pots = jnp.asarray(np.cumsum(rng.integers(0, 3, (3, T, FEAT, H, W)), axis=1).astype(np.float32))
    batched = jax.vmap(lambda p: I.k_winners(p, 3, 1))(pots)
    for i in range(3):
        np.testing.assert_array_equal(batched.index[i], I.k_winners(pots[i], 3, 1).index)


def _pointwise_then_k_winners(x, k, r):
    pot = I.pointwise_inhibition(x)
    spk = jnp.sign(pot)
    return pot, spk, I.k_winners(pot, k, r, spk)


_pk_reference = {(k, r): jax.jit(lambda x, k=k, r=r: _pointwise_then_k_winners(x, k, r)) for k, r in ((1, 0), (3, 1))}


@settings(max_examples=40, deadline=None)
@given(cumulative_potentials(), st.sampled_from([(1, 0), (3, 1)]), st.booleans())
def test_pointwise_k_winners_is_pointwise_then_k_winners(pot_spk, k_r, noisy):
    """The fused training path equals pointwise inhibition → sign → k_winners bit for bit (ties included)."""
    thp, _ = pot_spk
    x = np.asarray(thp)
    if noisy:  # non-integer potentials of both signs, too
        x = x + np.random.default_rng(int(x.sum())).normal(0, 0.5, x.shape).astype(np.float32)
    x = jnp.asarray(x, jnp.float32)
    k, r = k_r
    pot, spk, win = _pk_reference[k_r](x)
    pot2, spk2, win2 = I.pointwise_k_winners(x, k, r)
    np.testing.assert_array_equal(pot2, pot)
    np.testing.assert_array_equal(spk2, spk)
    np.testing.assert_array_equal(win2.index, win.index)
    np.testing.assert_array_equal(win2.valid, win.valid)


def _pointwise_per_step_argmax(x):
    """Pointwise inhibition as first written: the argmax over features at every step, taken at ``e``."""
    t = x.shape[0]
    m = jnp.max(x, axis=1)
    idx = jnp.argmax(x, axis=1)
    e = jnp.clip(t - jnp.sum(m > 0, axis=0), 0, t - 1)
    winner = jnp.take_along_axis(idx, e[None], axis=0)[0]
    keep = jnp.arange(x.shape[1])[:, None, None] == winner[None]
    return jnp.where(keep[None], x * jnp.sign(m[-1])[None, None], jnp.zeros((), x.dtype))


_pointwise_ref = jax.jit(_pointwise_per_step_argmax)


@settings(max_examples=40, deadline=None)
@given(cumulative_potentials(), st.booleans())
def test_pointwise_inhibition_argmax_at_the_first_step_only(pot_spk, noisy):
    """The argmax over features taken on step ``e`` only equals the argmax at every step taken at ``e``
    (ties to the lowest feature, non-cumulative and negative inputs included)."""
    x = np.asarray(pot_spk[0])
    if noisy:
        x = x + np.random.default_rng(int(x.sum())).normal(0, 0.5, x.shape).astype(np.float32)
    x = jnp.asarray(x, jnp.float32)
    np.testing.assert_array_equal(I.pointwise_inhibition(x), _pointwise_ref(x))


_conv_latency = jax.jit(L.conv_latency, static_argnames=("timesteps", "padding"))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([(2, 3, 3, 0), (3, 5, 5, 2), (4, 2, 3, 1)]),
       st.sampled_from([0.1, 0.5, 1.0]), st.booleans())
def test_conv_of_the_first_spike_map_is_the_dot_conv_of_its_wave_bit_for_bit(seed, shape, density, negative):
    """``conv_latency(latency)`` == ``conv(pad(wave(latency)), impl="dot")`` exactly (same sums, same order)."""
    c, f, k, padding = shape
    rng = np.random.default_rng(seed)
    steps = 7
    lat = np.where(rng.random((c, 6, 7)) < density, rng.integers(0, steps, (c, 6, 7)), steps).astype(np.uint8)
    w = rng.normal(0.5, 0.3 if negative else 0.05, (f, c, k, k)).astype(np.float32)
    wave = L.pad(jnp.asarray(lat[None] <= np.arange(steps)[:, None, None, None], jnp.float32), padding)
    want = L.conv(wave, jnp.asarray(w), impl="dot")
    got = _conv_latency(jnp.asarray(lat), jnp.asarray(w), timesteps=steps, padding=padding)
    assert got.shape == want.shape == (steps, f, 6 + 2 * padding - k + 1, 7 + 2 * padding - k + 1)
    np.testing.assert_array_equal(got, want)


_one_per_position = jax.jit(lambda s, f, r: I.winners_one_per_position(s, f, FEAT, KMAX, r))
_one_per_position_1 = jax.jit(lambda s, f, r: I.winners_one_per_position(s, f, 1, KMAX, r))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 0.3, 0.8]), st.integers(0, 2), st.booleans(),
       st.sampled_from(["positive", "mixed", "negative"]))
def test_winners_one_per_position_equal_the_greedy_picks_on_the_whole_map(seed, zeros, radius, one_feature, signs):
    """The (H, W) form of the k-WTA picks gives the winners (order, ties, stops) of the (F, H, W) map
    holding each position's score at its feature and 0 elsewhere (negative scores too, which the
    map's zeros outrank)."""
    rng = np.random.default_rng(seed)
    n_feat = 1 if one_feature else FEAT
    score = (rng.integers(-3 if signs == "mixed" else 1, 4, (H, W)) * (rng.random((H, W)) >= zeros)).astype(np.float32)
    if signs == "negative":  # no zeros: only the map's other entries (F > 1) stop the picks at once
        score = -np.abs(score) - 1
    feature = rng.integers(0, n_feat, (H, W)).astype(np.int32)
    whole = np.zeros((n_feat, H, W), np.float32)
    whole[feature, np.arange(H)[:, None], np.arange(W)[None, :]] = score
    want = I.winners_from_scores(jnp.asarray(whole), KMAX, radius)
    got = (_one_per_position_1 if one_feature else _one_per_position)(jnp.asarray(score), jnp.asarray(feature), radius)
    np.testing.assert_array_equal(np.asarray(got.index), np.asarray(want.index))
    np.testing.assert_array_equal(np.asarray(got.valid), np.asarray(want.valid))
