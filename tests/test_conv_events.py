"""``conv_impl = "events"``: STDP training steps from the first crossings (snnjax_plugins.conv.events)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snnjax_plugins.conv import events as E
from snnjax_plugins.conv import inhibition as I
from snnjax_plugins.conv import layers as L
from snnjax_plugins.conv import networks as N
from snnjax_plugins.conv import pipeline as P

from tests.test_golden import assert_matches_golden, run_tiny

STEPS = 7


def _dense(lat, w, theta, padding, k, radius):
    _, x = L.fire(L.conv_latency(lat, w, STEPS, padding), theta)
    _, spk, win = I.pointwise_k_winners(x, k, radius)
    return spk, win


def _events(lat, w, theta, padding, k, radius):
    spk, win, _ = E.first_spike_k_winners(lat, w, theta, STEPS, padding, k, radius)
    return spk, win


# theta is traced (one compile per padding, k and radius, not per threshold)
_dense_j = jax.jit(_dense, static_argnames=("padding", "k", "radius"))
_events_j = jax.jit(_events, static_argnames=("padding", "k", "radius"))


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.15, 0.4, 0.8]), st.sampled_from([(1, 0), (3, 1), (4, 2)]),
       st.sampled_from([0.0, 1.0, 3.0]), st.integers(0, 2))
def test_first_crossings_give_the_dense_spikes_and_winners_exactly(seed, density, k_r, theta, padding):
    """With weights on a 1/16 grid every potential is exact in float32 in both forms, so the spikes and
    the k winners (ties to an earlier spike, a larger potential, then the lowest index) must be equal."""
    rng = np.random.default_rng(seed)
    c, f, kern = 3, 5, 3
    lat = np.where(rng.random((c, 6, 7)) < density, rng.integers(0, STEPS, (c, 6, 7)), STEPS).astype(np.uint8)
    w = (rng.integers(0, 17, (f, c, kern, kern)) / 16).astype(np.float32)  # many ties
    k, r = k_r
    spk, win = _dense_j(jnp.asarray(lat), jnp.asarray(w), theta=theta, padding=padding, k=k, radius=r)
    spk2, win2 = _events_j(jnp.asarray(lat), jnp.asarray(w), theta=theta, padding=padding, k=k, radius=r)
    np.testing.assert_array_equal(spk2, spk)
    np.testing.assert_array_equal(win2.index, win.index)
    np.testing.assert_array_equal(win2.valid, win.valid)


def test_potentials_at_a_step_agree_with_the_dense_potentials_to_rounding():
    """Real-valued weights: the per-position products round differently from the dense form, within float32 rounding."""
    rng = np.random.default_rng(3)
    lat = np.where(rng.random((30, 14, 14)) < 0.77, rng.integers(0, 15, (30, 14, 14)), 15).astype(np.uint8)
    w = rng.uniform(0, 1, (250, 30, 3, 3)).astype(np.float32)
    dense = np.asarray(L.conv_latency(jnp.asarray(lat), jnp.asarray(w), 15, 1))  # (T, F, H, W)
    cols = E.patch_latencies(jnp.asarray(lat), (3, 3), 1, 15)
    wfk = jnp.asarray(w.reshape(250, -1))
    for t in (0, 7, 14):
        got = np.asarray(E.potentials_at(cols, wfk, jnp.full((cols.shape[0],), t, jnp.int32)))  # (P, F)
        want = dense[t].reshape(250, -1).T
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-5)
        assert got.max() > 10  # not a trivially empty case


def test_first_crossing_is_the_first_step_above_threshold():
    rng = np.random.default_rng(5)
    lat = np.where(rng.random((6, 10, 10)) < 0.3, rng.integers(0, 15, (6, 10, 10)), 15).astype(np.uint8)
    w = rng.normal(0.8, 0.05, (4, 6, 5, 5)).astype(np.float32)
    dense = np.asarray(L.conv_latency(jnp.asarray(lat), jnp.asarray(w), 15, 2))
    cols = E.patch_latencies(jnp.asarray(lat), (5, 5), 2, 15)
    e, pot_e = E.first_crossing(cols, jnp.asarray(w.reshape(4, -1)), 25.0, 15)
    fired = dense.max(axis=1) > 25.0  # (T, H, W)
    want = np.where(fired.any(0), np.argmax(fired, axis=0), 15).reshape(-1)
    np.testing.assert_array_equal(np.asarray(e), want)
    assert 0 < (want < 15).mean() < 1  # some positions fire, some never
    at = np.minimum(want, 14)
    np.testing.assert_allclose(np.asarray(pot_e), dense[at, :, np.arange(100) // 10, np.arange(100) % 10], rtol=2e-6)


def _layer_scan(layer, w0, lats, rule):
    def step(carry, lat):
        w, s = carry
        out = N.layer_train_forward(layer, w, lat, 15)
        w, s = rule.update(w, s, P.ConvActivity(out.spk_in, out.spk, out.winners))
        return (w, s), (out.spk, out.winners.index)

    return jax.jit(lambda w, l: jax.lax.scan(step, (w, rule.init(w)), l))(w0, lats)


def test_mnist_layers_train_identically_with_events_and_dot():
    """Layers 1 and 2 of the Mozafari network on 12 MNIST digits: the same spikes, winners and weights."""
    from snnjax import data

    pipe = P.ConvPipeline(N.mozafari2019(), 10)
    lat0 = jnp.asarray(pipe.encode(np.asarray(data.load("mnist-embedded", "train", limit=12).images)))
    w = N.init_weights(jax.random.key(11), pipe.spec)
    lat1 = N.layer_outputs(w[0], lat0, pipe.spec.layers[0], 15)
    for layer, w0, lats in ((pipe.spec.layers[0], w[0], lat0), (pipe.spec.layers[1], w[1], lat1)):
        (wd, _), (spk_d, win_d) = _layer_scan(layer, w0, lats, pipe.stdp)
        (we, _), (spk_e, win_e) = _layer_scan(layer._replace(conv_impl="events"), w0, lats, pipe.stdp)
        assert int(spk_d.sum()) > 0 and bool(jnp.any(wd != w0))
        np.testing.assert_array_equal(spk_e, spk_d)
        np.testing.assert_array_equal(win_e, win_d)
        np.testing.assert_array_equal(we, wd)


def test_events_falls_back_to_dot_where_weights_could_decrease_potentials():
    """Negative weights, another rule or a chained transform: the epoch runs the dot form (same results as dot)."""
    pipe = P.ConvPipeline(N.mozafari2019(conv_impl="events"), 10)
    w = jnp.full((1, 30, 6, 5, 5), 0.5)
    assert pipe.events_exact(w)
    assert not pipe.events_exact(w.at[0, 0, 0, 0, 0].set(-0.1))
    assert not pipe.events_exact(w, make_rule=lambda: pipe.stdp)
    assert not P.ConvPipeline(N.mozafari2019(conv_impl="events"), 10, stdp=dict(lb=-0.5)).events_exact(w)


def test_conv_impl_events_is_a_config_choice():
    assert N.mozafari2019(conv_impl="events").layers[1].conv_impl == "events"
    assert N.mozafari2019(conv_impl="events").decision.conv_impl == "dot"
    with pytest.raises(Exception, match="conv_impl must be one of dot, nhwc, events"):
        N.check_conv_impl("event")


def test_pinned_tiny_conv_run_with_events_reproduces_the_golden_metrics(tmp_path):
    """The pinned tiny ``conv-mnist`` run (``tests/test_golden.py``) gives its golden per-seed metrics with events."""
    doc = run_tiny("conv-mnist", tmp_path / "events", "--set", "conv_impl=events")
    assert doc["config"]["conv_impl"] == "events"
    assert_matches_golden("conv-mnist", doc)


def test_conv_profile_script_prints_activity_and_every_part(capsys):
    """``benchmarks/conv_profile.py`` runs on 2 images and reports each part of both layers; bad input is one line."""
    import json
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "conv_profile.py"
    main = runpy.run_path(str(script))["main"]
    assert main(["--images", "2", "--repeats", "1"]) == 0
    blob = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    parts = {(r["layer"], r["part"]) for r in blob["rows"] if "part" in r}
    assert {p for layer, p in parts if layer == "front end"} == {
        "DoG filters", "local normalisation (17x17 box)", "latency (ranks)", "whole (as latency_batch)"}
    for layer in (1, 2):
        for part in ("conv dot", "conv one-hot events", "first crossings (events)", "STDP step dot", "STDP step events",
                     "inference, one product per 64 images", "inference, default chunks"):
            assert (layer, part) in parts
    dens = [r for r in blob["rows"] if "input_density" in r]
    assert [r["field"] for r in dens] == [150, 270] and all(0 < r["input_density"] < 1 for r in dens)
    rounding = {r["rounding"]: r for r in blob["rows"] if "rounding" in r}
    assert set(rounding) == {"one product (2 seeds) vs the default chunks (2 seeds)",
                             f"one product (2 seeds) vs one seed padded to {P.ALONE_MIN_ROWS} filters", "one product (2 seeds) vs one seed unpadded"}
    # the default chunks and a seed alone (padded) round as one product of two seeds, bit for bit
    assert rounding["one product (2 seeds) vs the default chunks (2 seeds)"]["differ"] == 0
    assert rounding[f"one product (2 seeds) vs one seed padded to {P.ALONE_MIN_ROWS} filters"]["differ"] == 0
    with pytest.raises(SystemExit, match="^error: "):
        main(["--images", "0"])


def test_the_k_wta_time_sum_rounds_alike_for_one_seed_and_several():
    """``inhibition.time_sum`` (the k-WTA score's sum over time steps) gives one seed the same bits alone
    and beside another, and equals ``jnp.sum(axis=0)`` vmapped over two seeds — the order of every
    stored result — while ``jnp.sum`` for one seed alone rounds otherwise (so a near-tie of winners
    could fall otherwise in a one-seed part)."""
    from snnjax_plugins.conv.inhibition import time_sum

    rng = np.random.default_rng(1)
    t, h, w = 15, 28, 28
    first = rng.integers(0, t + 1, (2, h, w))
    sg = (np.arange(t)[None, :, None, None] >= first[:, None]).astype(np.float32)
    x = (rng.random((2, h, w)) * 300 + 1500).astype(np.float32)
    sg, x = jnp.asarray(sg), jnp.asarray(x)
    # the products inside the compiled program, as in the score (XLA fuses them into the sum)
    ours = jax.jit(jax.vmap(lambda s, v: time_sum(s * v[None])))
    xla = jax.jit(jax.vmap(lambda s, v: jnp.sum(s * v[None], axis=0)))
    two, alone = np.asarray(ours(sg, x)), np.asarray(ours(sg[:1], x[:1]))
    np.testing.assert_array_equal(alone[0], two[0])
    np.testing.assert_array_equal(two, np.asarray(xla(sg, x)))
    assert np.any(np.asarray(xla(sg[:1], x[:1]))[0] != two[0])  # why time_sum exists (JAX 0.10, CPU)
