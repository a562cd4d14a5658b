"""The conv front end's arithmetic: its sums in a written-out order, its ranks exact.

* The first-spike maps of the shipped networks equal those of the front end as XLA convolutions on
  one thread (``tests/golden/frontend_first_spikes.npz``, recorded with the commit it names), among
  them the images whose maps two threads changed (train 1606 and test 291, 587 for ``mozafari2019``,
  train 724 for ``kheradpisheh2018``): the order no longer depends on the thread count.
* :func:`tap_sum` takes its sums in the order its docstring states (checked against a NumPy
  transcription, FMA as one rounding of the exact float64 value).
* :func:`latency_ranks` ranks as a stable descending argsort does, ties, signed zeros and NaN
  included, on both of its paths; so does :func:`latency_ranks_batch`, where a threshold cuts a
  tie and where none does.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax import data
from snnjax_plugins.conv import frontend as F
from snnjax_plugins.conv import networks as N

GOLDEN = np.load(Path(__file__).resolve().parent / "golden" / "frontend_first_spikes.npz")


@pytest.mark.parametrize("net", ["mozafari2019", "kheradpisheh2018"])
def test_first_spike_maps_equal_the_one_thread_convolution_front_end(net):
    enc = getattr(N, net)().encoder()
    for split in ("train", "test"):
        if f"{net}_{split}" not in GOLDEN:
            continue
        index = GOLDEN[f"{net}_{split}_index"]
        images = np.asarray(data.load("mnist-embedded", split, limit=int(index.max()) + 1).images)[index]
        np.testing.assert_array_equal(enc.latency_batch(images), GOLDEN[f"{net}_{split}"], err_msg=f"{net} {split}")
        # in chunks of 7 (the last one padded with blank images): the same maps, and as many
        np.testing.assert_array_equal(enc.latency_batch(images, chunk=7), GOLDEN[f"{net}_{split}"], err_msg=f"{net} {split} chunks")
        # the per-image path (its ranks by latency_ranks alone) gives the same maps
        one = jax.jit(jax.vmap(enc.latency))(jnp.asarray(images, jnp.float32))
        np.testing.assert_array_equal(np.asarray(one), GOLDEN[f"{net}_{split}"], err_msg=f"{net} {split} per image")


def _fma(x, w, acc):
    """float32 fused multiply-add: the exact float64 value of ``x·w + acc`` rounded once."""
    return (x.astype(np.float64) * np.float64(w) + acc.astype(np.float64)).astype(np.float32)


def _chains_reference(views, w):
    """The one-filter order of :func:`tap_sum`, transcribed in NumPy (``w``: one weight per tap)."""
    k = len(views)
    pair8 = lambda v: ((v[0] + v[1]) + (v[4] + v[5])) + ((v[2] + v[3]) + (v[6] + v[7]))  # noqa: E731
    main, total = 16 * (k // 16), None
    if main:
        chains = [(views[c] * w[c]).astype(np.float32) for c in range(8)]
        for t in range(8, main):
            chains[t % 8] = _fma(views[t], w[t], chains[t % 8])
        total = pair8(chains)
    rest = main
    if k - main >= 8:
        tail = pair8([(views[t] * w[t]).astype(np.float32) for t in range(main, main + 8)])
        total = tail if total is None else total + tail
        rest = main + 8
    for t in range(rest, k):
        p = (views[t] * w[t]).astype(np.float32)
        total = p if total is None else total + p
    return total


@pytest.mark.parametrize("radius", [0, 1, 2, 8])
def test_box_mean_sums_in_the_stated_order(radius):
    rng = np.random.default_rng(radius)
    x = (rng.standard_normal((3, 12, 12)) * 100).astype(np.float32)
    size = 2 * radius + 1
    xp = np.pad(x, ((0, 0), (radius, radius), (radius, radius)))
    views = [xp[:, i : i + 12, j : j + 12] for i in range(size) for j in range(size)]
    a = np.full(size * size, np.float32(1) / np.float32(size * size), np.float32)
    want = _chains_reference(views, a)
    got = np.asarray(jax.jit(lambda v: F.box_mean(v, radius))(jnp.asarray(x)))
    np.testing.assert_array_equal(got, want)
    # and the order matters: a plain left-to-right sum differs somewhere for the 17 x 17 box
    if radius == 8:
        plain = views[0] * a[0]
        for t in range(1, size * size):
            plain = (plain + views[t] * a[t]).astype(np.float32)
        assert np.any(plain != got)


def test_several_filters_sum_in_one_fma_chain_over_the_taps():
    rng = np.random.default_rng(3)
    image = (rng.random((10, 10)) * 255).astype(np.float32)
    kernels = F.dog_filter_bank(F.KHERADPISHEH_DOG)  # (2, 1, 7, 7)
    xp = np.pad(image, 3)
    views = [xp[i : i + 10, j : j + 10] for i in range(7) for j in range(7)]
    w = kernels.reshape(2, -1)
    want = np.stack([views[0] * w[f, 0] for f in range(2)]).astype(np.float32)
    for t in range(1, 49):
        want = _fma(np.stack([views[t]] * 2), w[:, t, None, None], want)
    got = np.asarray(jax.jit(lambda im: F.dog_filter(im, kernels, 3, None))(jnp.asarray(image)))
    np.testing.assert_array_equal(got, want)


def _stable_first_steps(x, timesteps):
    flat = np.asarray(x, np.float32).reshape(-1)
    order = np.argsort(-flat, kind="stable")  # -(-0.0) == 0.0 == -(0.0): signed zeros tie, by index
    rank = np.empty_like(order)
    rank[order] = np.arange(flat.size)
    nnz = int(np.sum(flat != 0))
    bin_size = nnz // timesteps
    fires = (rank < timesteps * bin_size) & (flat != 0)
    first = np.where(fires, rank // max(bin_size, 1), timesteps)
    return first.reshape(np.shape(x)), nnz, bin_size


@pytest.mark.parametrize("path", ["int32 keys", "argsort"])
def test_latency_ranks_equal_a_stable_argsort_with_ties_signed_zeros_and_nan(path, monkeypatch):
    shape = (3, 5, 7) if path == "int32 keys" else (2, 5, 7)  # its own shape: a fresh trace
    if path == "argsort":  # the path of inputs too large to pack g·n + i into an int32
        monkeypatch.setattr(F, "_INT32_KEYS", 10)
    rng = np.random.default_rng(len(path))
    for trial in range(6):
        x = rng.integers(-3, 6, size=shape).astype(np.float32)  # many ties
        if trial % 2:
            x = np.abs(x) * rng.choice([1.0, 0.5], size=shape).astype(np.float32)
        x.reshape(-1)[:: 7] = -0.0
        x.reshape(-1)[3 :: 11] = np.nan if trial == 5 else x.reshape(-1)[3 :: 11]  # NaN ranks last, as a sort puts it
        for timesteps in (1, 3, 15, x.size + 1):
            first, nnz, bin_size = F.latency_ranks(jnp.asarray(x), timesteps)
            want, want_nnz, want_bin = _stable_first_steps(x, timesteps)
            np.testing.assert_array_equal(np.asarray(first), want, err_msg=f"trial {trial} T={timesteps}")
            assert (int(nnz), int(bin_size)) == (want_nnz, want_bin)


def test_latency_ranks_batch_equals_a_stable_argsort_where_ties_are_cut_and_where_not():
    rng = np.random.default_rng(7)
    shape = (2, 4, 6)
    xs = np.abs(rng.standard_normal((10,) + shape)).astype(np.float32)  # no ties: one sort decides
    xs[:2][xs[:2] < 0.5] = 0.0  # (map 2 has no zeros: at T = 3 the last bound is every value)
    xs[3:7] = rng.integers(0, 4, size=(4,) + shape)  # many ties, some cut by a threshold
    xs[5].reshape(-1)[::9] = -0.0
    xs[6].reshape(-1)[2::7] = np.nan
    xs[8] = 0.0  # nothing spikes
    xs[9].reshape(-1)[5:] = 0.0  # 5 non-zero values: nothing spikes at T = 15 (bin size 0)
    for timesteps in (1, 3, 15):
        exact = np.asarray(jax.vmap(lambda x, t=timesteps: F._ranks_where_no_tie_is_cut(x, t)[1])(jnp.asarray(xs)))
        assert exact[[0, 1, 2, 8, 9]].all()  # no ties cut: one sort decides
        if timesteps == 3:  # and some maps need latency_ranks
            assert not exact.all()
        first = np.asarray(F.latency_ranks_batch(jnp.asarray(xs), timesteps))
        for i, x in enumerate(xs):
            np.testing.assert_array_equal(first[i], _stable_first_steps(x, timesteps)[0], err_msg=f"map {i} T={timesteps}")


def test_a_cache_dir_never_serves_maps_of_another_front_end_version(tmp_path, monkeypatch):
    from snnjax_plugins.conv import pipeline as P

    images = np.asarray(data.load("mnist-embedded", "train", limit=3).images)
    pipe = P.ConvPipeline(N.mozafari2019(), 10, cache_dir=tmp_path)
    monkeypatch.setattr(P, "_MEMORY_CACHE", {})
    maps = pipe.encode(images)
    (first,) = tmp_path.glob("dog-latency-*.npy")
    np.testing.assert_array_equal(np.load(first), maps)
    np.save(first, np.zeros_like(maps))  # what another version might have left there
    monkeypatch.setattr(P, "_MEMORY_CACHE", {})
    monkeypatch.setattr(F, "MAPS_VERSION", F.MAPS_VERSION + 1)
    np.testing.assert_array_equal(pipe.encode(images), maps)  # recomputed, not read from `first`
    assert len(list(tmp_path.glob("dog-latency-*.npy"))) == 2
