"""Tiny hand-computed cases, bad-input errors, plugin registration and network smoke tests (conv STDP)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.errors import ConfigError, InputError
from snnjax.plugins import build_registry
from snnjax_plugins import conv as conv_plugin
from snnjax_plugins.conv import frontend as F
from snnjax_plugins.conv import inhibition as I
from snnjax_plugins.conv import layers as L
from snnjax_plugins.conv import networks as N
from snnjax_plugins.conv import stdp as S

# ----------------------------------------------------------------------------- DoG + latency


def test_dog_kernel_by_hand():
    # 3x3 kernel, sigma1 = 1, sigma2 = 2: three distinct radii r^2 = 0, 1, 2
    def g(r2, s):
        return math.exp(-r2 / (2 * s * s)) / (s * s)

    raw = {r2: (g(r2, 1.0) - g(r2, 2.0)) / (2 * math.pi) for r2 in (0, 1, 2)}
    grid = np.array([[raw[2], raw[1], raw[2]], [raw[1], raw[0], raw[1]], [raw[2], raw[1], raw[2]]])
    grid = grid - grid.mean()
    grid = grid / grid.max()
    k = F.dog_kernel(3, 1.0, 2.0)
    assert k.dtype == np.float32 and k[1, 1] == 1.0
    np.testing.assert_allclose(k, grid, rtol=1e-6)
    # a smaller kernel is zero-padded (centred) to the largest window
    bank = F.dog_filter_bank([(3, 1.0, 2.0), (5, 1.0, 2.0)])
    assert bank.shape == (2, 1, 5, 5)
    np.testing.assert_array_equal(bank[0, 0, 1:4, 1:4], k)
    assert bank[0, 0, 0].sum() == 0 and bank[0, 0, :, 0].sum() == 0


def test_latency_by_hand():
    x = jnp.asarray([[[5.0, 4.0, 3.0], [2.0, 1.0, 0.0]]])  # (C=1, 2, 3): 5 non-zeros
    first, nnz, bin_size = F.latency_ranks(x, 2)
    assert int(nnz) == 5 and int(bin_size) == 2
    # 5, 4 → step 0; 3, 2 → step 1; 1 is one of the nnz - T*bin = 1 smallest: never; 0 never
    np.testing.assert_array_equal(first, [[[0, 0, 1], [1, 2, 2]]])
    wave = F.intensity_to_latency(x, 2)
    np.testing.assert_array_equal(wave[0], [[[5, 4, 0], [0, 0, 0]]])
    np.testing.assert_array_equal(wave[1], [[[5, 4, 3], [2, 0, 0]]])
    # ties: the lower flat index spikes first
    tie = jnp.asarray([[[1.0, 1.0, 1.0, 1.0]]])
    np.testing.assert_array_equal(F.latency_ranks(tie, 4)[0], [[[0, 1, 2, 3]]])
    # fewer non-zeros than steps: nothing spikes (the original raises)
    assert int(F.latency_ranks(jnp.asarray([[[1.0, 0.0]]]), 3)[0].min()) == 3
    # latency map <-> cumulative wave round trip
    w = F.latency_to_wave(first, 2)
    np.testing.assert_array_equal(w, [[[[1, 1, 0], [0, 0, 0]]], [[[1, 1, 1], [1, 0, 0]]]])
    np.testing.assert_array_equal(F.wave_to_latency(w), first)


def test_dog_latency_encoder_end_to_end_small():
    img = np.zeros((9, 9), np.uint8)
    img[4, 4] = 255
    k = F.dog_kernel(3, 1.0, 2.0)
    enc = F.dog_latency([(3, 1.0, 2.0)], padding=1, threshold=10.0, norm_radius=1, timesteps=1)
    # a single bright pixel: the filter output around it is 255 * the (flipped) kernel, kept where >= 10
    expected = np.zeros((9, 9), np.uint8)
    expected[3:6, 3:6] = (255 * k[::-1, ::-1] >= 10.0)
    wave = enc.encode(None, jnp.asarray(img))
    assert wave.shape == (1, 1, 9, 9) and wave.dtype == jnp.uint8
    np.testing.assert_array_equal(wave[0, 0], expected)  # T = 1: every non-zero spikes at step 0
    # T larger than the number of non-zeros: bin size 0 → nothing spikes
    assert int(enc._replace(timesteps=int(expected.sum()) + 1).encode(None, jnp.asarray(img)).sum()) == 0


# ----------------------------------------------------------------------------- conv / fire / pool


def test_spike_wave_conv_and_pool_by_hand():
    # one input map 3x3, T = 3, first-spike steps (3 = never)
    lat = jnp.asarray([[[0, 1, 3], [2, 0, 3], [3, 3, 1]]], jnp.uint8)
    wave = F.latency_to_wave(lat, 3, jnp.float32)
    w = jnp.ones((1, 1, 2, 2), jnp.float32)
    pot = L.conv(wave, w)
    # step t counts the spikes (latency <= t) in each 2x2 window
    np.testing.assert_array_equal(pot[:, 0], [[[2, 1], [1, 1]], [[3, 2], [1, 2]], [[4, 2], [2, 2]]])
    np.testing.assert_array_equal(L.conv(wave, w, impl="xla"), pot)
    np.testing.assert_array_equal(L.conv(wave, w, impl="nhwc"), pot)  # integer sums: exact in any order
    spk, thp = L.fire(pot, 1.0)
    np.testing.assert_array_equal(spk[:, 0], [[[1, 0], [0, 0]], [[1, 1], [0, 1]], [[1, 1], [1, 1]]])
    np.testing.assert_array_equal(thp[2, 0], [[4, 2], [2, 2]])
    # no threshold: only the last step, untouched
    spk_none, thp_none = L.fire(pot - 3.0, None)
    np.testing.assert_array_equal(thp_none[:2], 0)
    np.testing.assert_array_equal(spk_none[2, 0], [[1, -1], [-1, -1]])
    # pooling a cumulative wave keeps the earliest spike of each window
    pooled = L.pool(wave, 2, 2, 1)  # padding acts as -inf → 2x2 output
    assert pooled.shape == (3, 1, 2, 2)
    np.testing.assert_array_equal(F.wave_to_latency(pooled)[0], [[0, 1], [2, 0]])
    np.testing.assert_array_equal(F.wave_to_latency(L.pool(wave, 2, 1))[0], [[0, 0], [0, 0]])
    np.testing.assert_array_equal(L.pad(pooled, 1).shape, (3, 1, 4, 4))
    np.testing.assert_array_equal(L.pad(pooled, (1, 0, 0, 2)).shape, (3, 1, 4, 3))


# ----------------------------------------------------------------------------- STDP / R-STDP


def _one_winner_case():
    # input (T=3, C=1, 2x2) latencies [[0, 2], [never, 1]] → counts [[3, 1], [0, 2]]
    spk_in = F.latency_to_wave(jnp.asarray([[[0, 2], [3, 1]]], jnp.uint8), 3, jnp.float32)
    # output (1 feature, 1x1) fires at step 1 → count 2
    spk_out = F.latency_to_wave(jnp.asarray([[[1]]], jnp.uint8), 3, jnp.float32)
    winners = jnp.asarray([[0, 0, 0]], jnp.int32)
    return spk_in, spk_out, winners


def test_stdp_update_by_hand():
    spk_in, spk_out, winners = _one_winner_case()
    w = jnp.full((1, 1, 2, 2), 0.5, jnp.float32)
    pair = S.stdp_pairings(spk_in, spk_out, winners, (2, 2))
    np.testing.assert_array_equal(pair[0, 0], [[True, False], [False, True]])  # count >= 2: before or with
    new = S.stdp_update(w, spk_in, spk_out, winners, 0.004, -0.003, lb=0.0, ub=1.0, stabilizer=True)
    ltp, ltd = np.float32(0.5) + np.float32(0.004) * np.float32(0.25), np.float32(0.5) + np.float32(-0.003) * np.float32(0.25)
    np.testing.assert_array_equal(new[0, 0], np.array([[ltp, ltd], [ltd, ltp]], np.float32))
    new2 = S.stdp_update(w, spk_in, spk_out, winners, 0.004, -0.003, lb=0.0, ub=1.0, stabilizer=False)
    np.testing.assert_allclose(new2[0, 0], [[0.504, 0.497], [0.497, 0.504]], rtol=1e-6)


def test_stdp_clamp_all_vs_updated_only_and_overwrite():
    spk_in, spk_out, _ = _one_winner_case()
    w = jnp.stack([jnp.full((1, 2, 2), 0.5), jnp.full((1, 2, 2), 1.2)]).astype(jnp.float32)  # feature 1 over ub
    spk_out2 = jnp.concatenate([spk_out, jnp.zeros_like(spk_out)], axis=1)
    win = jnp.asarray([[0, 0, 0], [-1, -1, -1]], jnp.int32)
    all_ = S.stdp_update(w, spk_in, spk_out2, win, 0.004, -0.003, clamp_all=True)
    only = S.stdp_update(w, spk_in, spk_out2, win, 0.004, -0.003, clamp_all=False)
    np.testing.assert_array_equal(all_[1], 1.0)  # faithful: the non-winner is clipped too
    np.testing.assert_array_equal(only[1], np.float32(1.2))  # only updated kernels are clamped
    np.testing.assert_array_equal(all_[0], only[0])
    # a later winner of the same feature overwrites the earlier one's rates
    spk_in4 = jnp.concatenate([spk_in, jnp.zeros_like(spk_in)], axis=3)  # 2x4 input, 1x3 output
    spk_out4 = jnp.zeros((3, 1, 1, 3), jnp.float32).at[:, 0, 0, 2].set(1.0)
    win2 = jnp.asarray([[0, 0, 0], [0, 0, 2]], jnp.int32)  # second: silent input field, spiking winner → all LTD
    new = S.stdp_update(w[:1], spk_in4, spk_out4, win2, 0.004, -0.003, stabilizer=False)
    np.testing.assert_allclose(new, np.full((1, 1, 2, 2), 0.497, np.float32), rtol=1e-6)


def test_stdp_rule_schedule():
    rule = S.spyketorch_stdp(schedule_every=2, max_a_plus=0.01)
    spk_in, spk_out, winners = _one_winner_case()
    w = jnp.full((1, 1, 2, 2), 0.5, jnp.float32)
    st = rule.init(w)
    rates = []
    for _ in range(5):
        w, st = rule.update(w, st, S.ConvActivity(spk_in, spk_out, winners))
        rates.append((float(st.a_ltp[0]), float(st.a_ltd[0])))
    # doubled on images 2 and 4 (the counted image already uses the new rate), capped at 0.01
    np.testing.assert_allclose([r[0] for r in rates], [0.004, 0.008, 0.008, 0.01, 0.01], rtol=1e-6)
    np.testing.assert_allclose([r[1] for r in rates], [-0.003, -0.006, -0.006, -0.0075, -0.0075], rtol=1e-6)


def test_r_stdp_by_hand():
    rule = S.r_stdp(batch_size=4, adaptive_int=1.0)
    spk_in, spk_out, winners = _one_winner_case()
    w = jnp.full((1, 1, 2, 2), 0.5, jnp.float32)
    st = rule.init(w)
    upd = jax.jit(lambda w, st, d, y: rule.update(w, st, S.ConvActivity(spk_in, spk_out, winners, d, y)))
    # correct → STDP (0.004, -0.003), no stabilizer, bounds [0.2, 0.8]
    w1, st = upd(w, st, 3, 3)
    np.testing.assert_allclose(w1[0, 0], [[0.504, 0.497], [0.497, 0.504]], rtol=1e-6)
    # wrong → anti-STDP (-0.004, +0.0005)
    w2, st = upd(w, st, 2, 3)
    np.testing.assert_allclose(w2[0, 0], [[0.496, 0.5005], [0.5005, 0.496]], rtol=1e-6)
    # silence → no update
    w3, st = upd(w, st, -1, 3)
    np.testing.assert_array_equal(w3, w)
    assert (int(st.correct), int(st.wrong), int(st.seen)) == (1, 1, 3)
    # end of the batch of 4 (one more correct): 2 correct, 1 wrong → rates adapt
    _, st = upd(w, st, 1, 1)
    np.testing.assert_allclose(st.reward, [0.004 * 0.25, -0.003 * 0.25], rtol=1e-6)
    np.testing.assert_allclose(st.punish, [-0.004 * 0.5, 0.0005 * 0.5], rtol=1e-6)
    assert int(st.seen) == 0


# ----------------------------------------------------------------------------- errors


def test_bad_inputs_raise_clear_errors():
    enc = F.dog_latency()
    with pytest.raises(InputError, match="2-D image"):
        enc.encode(None, jnp.zeros((1, 28, 28)))
    with pytest.raises(InputError, match="larger than"):
        L.conv(jnp.zeros((2, 1, 3, 3)), jnp.zeros((1, 1, 5, 5)))
    with pytest.raises(InputError, match="larger than"):
        F.dog_filter(jnp.zeros((4, 4)), F.dog_filter_bank(), padding=0)
    with pytest.raises(InputError, match="input maps"):
        L.conv(jnp.zeros((2, 2, 5, 5)), jnp.zeros((1, 3, 3, 3)))
    with pytest.raises(InputError, match="time-major"):
        I.pointwise_inhibition(jnp.zeros((3, 4, 4)))
    for k in (0, -1):
        with pytest.raises(ConfigError, match="positive"):
            I.k_winners(jnp.zeros((2, 1, 3, 3)), k, 0)
        with pytest.raises(ConfigError):
            I.k_wta(k=k)
    with pytest.raises(ConfigError, match="radius"):
        I.k_winners(jnp.zeros((2, 1, 3, 3)), 1, -1)
    with pytest.raises(ConfigError, match="radius"):
        N.mozafari2019(r1=-2)
    for t in (0, -3):
        with pytest.raises(ConfigError, match="timesteps"):
            F.dog_latency(timesteps=t)
        with pytest.raises(ConfigError, match="timesteps"):
            F.latency_to_wave(jnp.zeros((1, 2, 2), jnp.uint8), t)
    with pytest.raises(ConfigError, match="lb < ub"):
        S.spyketorch_stdp(lb=1.0, ub=0.0)
    with pytest.raises(ConfigError, match="conv_impl"):
        N.mozafari2019(conv_impl="fft")
    with pytest.raises(ConfigError, match="conv impl"):
        L.conv(jnp.zeros((2, 1, 3, 3)), jnp.zeros((1, 1, 2, 2)), impl="fft")
    with pytest.raises(ConfigError, match="unknown network"):
        N.network("lenet")


# ----------------------------------------------------------------------------- plugins


def test_plugins_registered():
    reg = build_registry([conv_plugin], use_entry_points=False)
    assert "dog-latency" in reg.names("encoder")
    assert {"pointwise", "k-wta"} <= set(reg.names("inhibition"))
    assert {"spyketorch-stdp", "r-stdp"} <= set(reg.names("rule"))
    for kind, name in [("encoder", "dog-latency"), ("inhibition", "pointwise"), ("inhibition", "k-wta"),
                       ("rule", "spyketorch-stdp"), ("rule", "r-stdp")]:
        assert reg.info(kind, name).doc
    kwta = reg.create("inhibition", "k-wta", k=2, radius=1)
    assert kwta(jnp.zeros((2, 3, 4, 4))).index.shape == (2, 3)
    rule = reg.create("rule", "spyketorch-stdp", a_plus=0.01, clamp_all=False)
    assert float(rule.init(jnp.zeros((3, 1, 2, 2))).a_ltp[1]) == pytest.approx(0.01)
    enc = reg.create("encoder", "dog-latency", timesteps=4)
    assert enc.encode(jax.random.PRNGKey(0), jnp.zeros((28, 28), jnp.uint8)).shape == (4, 6, 28, 28)


# ----------------------------------------------------------------------------- networks


def _tiny_spec():
    # a small network with the same structure as Mozafari's (2 STDP layers + decision)
    return N.NetworkSpec(
        "tiny", ((3, 1.0, 2.0), (3, 2.0, 1.0)), 1, 4,
        (N.ConvLayerSpec(2, 4, 3, 2.0, 2, 1, pad_in=1, pool=(2, 2, 0)),
         N.ConvLayerSpec(4, 6, 2, 1.0, 2, 0, pad_in=0, pool=(2, 2, 1), pointwise_input=True)),
        N.ConvLayerSpec(6, 4, 2, None, 1, 0, pad_in=1), n_classes=2,
    )


def test_layerwise_training_vmaps_over_seeds():
    spec = _tiny_spec()
    T = spec.timesteps
    rng = np.random.default_rng(0)
    images = (rng.random((6, 8, 8)) * 255).astype(np.uint8)
    labels = jnp.asarray(rng.integers(0, 2, 6))
    lat0 = jnp.asarray(spec.encoder().latency_batch(images))
    assert lat0.shape == (6, 2, 8, 8) and lat0.dtype == jnp.uint8
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    ws = jax.jit(jax.vmap(lambda k: N.init_weights(k, spec)))(keys)
    rule = S.spyketorch_stdp(schedule_every=3)
    l1, l2 = spec.layers
    tr1 = N.make_layer_trainer(l1, rule, T, seeds=True)
    st1 = jax.vmap(rule.init)(ws[0])
    w1, st1 = tr1(keys, ws[0], st1, lat0)
    w1, st1 = tr1(keys, w1, st1, lat0)  # second epoch: same compiled program
    assert tr1._cache_size() == 1
    assert w1.shape == (2, 4, 2, 3, 3) and not np.array_equal(w1[0], w1[1])
    assert np.all((np.asarray(w1) >= 0) & (np.asarray(w1) <= 1))
    np.testing.assert_array_equal(st1.count, [0, 0])  # 12 images, doubling every 3
    # cached layer-1 outputs per seed (uint8 first-spike maps), equal to the uncached wave
    lat1 = jax.vmap(lambda w: N.layer_outputs(w, lat0, l1, T))(w1)
    assert lat1.dtype == jnp.uint8 and lat1.shape == (2, 6, 4, 4, 4)
    wave = F.latency_to_wave(lat0[0], T, jnp.float32)
    direct = L.pool(L.fire(L.conv(L.pad(wave, 1), w1[0]), 2.0)[0], 2, 2, 0)
    np.testing.assert_array_equal(F.latency_to_wave(lat1[0, 0], T, jnp.float32), direct)
    tr2 = N.make_layer_trainer(l2, rule, T, seeds=True, shared_cache=False)
    w2, _ = tr2(keys, ws[1], jax.vmap(rule.init)(ws[1]), lat1)
    lat2 = jax.vmap(lambda w, c: N.layer_outputs(w, c, l2, T))(w2, lat1)
    # decision layer with R-STDP, then evaluation
    r3 = S.r_stdp(batch_size=6)
    dec = jax.jit(jax.vmap(lambda k, w, s, c: N.train_decision(k, w, s, c, labels, spec.decision, r3, T, 2)))
    w3, s3, stats = dec(keys, ws[2], jax.vmap(r3.init)(ws[2]), lat2)
    np.testing.assert_array_equal(stats.correct + stats.wrong + stats.silent, [6, 6])
    acc = jax.vmap(lambda w, c: N.evaluate_decision(w, c, labels, spec.decision, T, 2))(w3, lat2)
    assert acc.shape == (2,) and np.all((0 <= acc) & (acc <= 1))


def test_decision_forward_matches_full_computation():
    spec = _tiny_spec()
    layer = spec.decision
    T = spec.timesteps
    rng = np.random.default_rng(3)
    lat = jnp.asarray(rng.integers(0, T + 2, (6, 3, 3)).clip(0, T).astype(np.uint8))
    w = jnp.asarray(rng.normal(0.0, 0.5, (4, 6, 2, 2)).astype(np.float32))
    decision, pot_last, win = N.decision_forward(layer, w, lat, T, 2)
    full = L.conv(L.pad(F.latency_to_wave(lat, T, jnp.float32), 1), w)
    spk, _ = L.fire(full, None)
    ref = I.k_winners(full, 1, 0, spk)
    np.testing.assert_allclose(pot_last, full[-1], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(win.index, ref.index)
    assert int(decision) == (int(ref.index[0, 0]) // 2 if bool(ref.valid[0]) else -1)


def test_readout_learns_separable_features():
    rng = np.random.default_rng(0)
    labels = jnp.asarray(rng.integers(0, 3, 60))
    lat = np.full((60, 3, 2, 2), 4, np.uint8)
    lat[np.arange(60), np.asarray(labels), 0, 0] = 0  # class c → feature map c spikes
    feats = N.readout_features(jnp.asarray(lat), 4)
    params = N.train_readout(jax.random.PRNGKey(0), feats, labels, n_classes=3, steps=100, learning_rate=0.1)
    assert float(N.readout_accuracy(params, feats, labels)) == 1.0
    spec = N.kheradpisheh2018()
    assert spec.decision is None and spec.layers[1].pointwise_input


def test_conv_rules_compose_with_chain_and_freeze():
    from snnjax import plasticity as P

    spk_in, spk_out, winners = _one_winner_case()
    w = jnp.full((1, 1, 2, 2), 0.5, jnp.float32)
    mask = jnp.asarray([[[[True, False], [False, False]]]])
    rule = P.chain(S.r_stdp(), P.freeze(mask))
    new, _ = rule.update(w, rule.init(w), S.ConvActivity(spk_in, spk_out, winners, 3, 3))
    np.testing.assert_allclose(new[0, 0], [[0.5, 0.497], [0.497, 0.504]], rtol=1e-6)


def _class_patterns(rng, n, protos):
    """Sparse class prototypes on the decision layer's input (250 × 4 × 4), 10 % of their spikes
    dropped and 2 % spurious ones added, at random first-spike steps (15 = never)."""
    y = rng.integers(0, 10, n)
    on = (protos[y] & (rng.random((n,) + protos.shape[1:]) > 0.1)) | (rng.random((n,) + protos.shape[1:]) < 0.02)
    return np.where(on, rng.integers(0, 15, on.shape), 15).astype(np.uint8), y


def test_r_stdp_decision_layer_learns_separable_classes():
    """The whole decision path (R-STDP sign, reward/punish choice, adaptive rates, winner → class map,
    image/label pairing under shuffling) must learn 10 separable sparse classes: two R-STDP epochs of
    300 images take both seeds far above chance (measured: > 90 %). A flipped reward sign, a wrong
    class map or labels shuffled apart from their images stay near 10 %."""
    from snnjax_plugins.conv import networks as N
    from snnjax_plugins.conv import pipeline as P

    rng = np.random.default_rng(0)
    protos = rng.random((10, 250, 4, 4)) < 0.15
    xtr, ytr = _class_patterns(rng, 300, protos)
    xte, yte = _class_patterns(rng, 200, protos)
    pipe = P.ConvPipeline(N.mozafari2019(), 10, rstdp=dict(batch_size=300))
    keys = jax.random.split(jax.random.key(0), 2)
    st = pipe.init(keys)
    w3, st3 = st.w3, st.st3
    for e in range(2):
        w3, st3, stats = pipe.decision_epoch(P.epoch_keys(keys, 3, e), w3, st3, xtr, ytr)
    ev = pipe.evaluate(w3, xte, yte)
    assert np.all(ev.accuracy > 80), ev.accuracy
    assert np.all(np.asarray(stats.correct) > 240), stats  # training accuracy of the 2nd epoch > 80 %
    # the same images with labels that carry no information stay near chance
    w3b, st3b = st.w3, st.st3
    yrand = rng.permutation(ytr)
    for e in range(2):
        w3b, st3b, _ = pipe.decision_epoch(P.epoch_keys(keys, 3, e), w3b, st3b, xtr, yrand)
    assert np.all(pipe.evaluate(w3b, xte, yte).accuracy < 40)
