"""Golden outputs of the original SpykeTorch (tests/fixtures/spyketorch) reproduced by snnjax_plugins.conv.

See ``tests/fixtures/spyketorch/README.md`` for how each array was produced.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax_plugins.conv import frontend as F
from snnjax_plugins.conv import inhibition as I
from snnjax_plugins.conv import layers as L
from snnjax_plugins.conv import networks as N
from snnjax_plugins.conv import stdp as S

from tests.conftest import fixture_path


def _load(name: str):
    return np.load(fixture_path("spyketorch", name))


@pytest.fixture(scope="module")
def frontend_std():
    return _load("frontend_std.npz")


@pytest.fixture(scope="module")
def fire_pw():
    return _load("fire_pointwise.npz")


@pytest.fixture(scope="module")
def kw():
    return _load("k_winners.npz")


@pytest.fixture(scope="module")
def cps():
    return _load("conv_pool_stdp.npz")


@pytest.fixture(scope="module")
def mnist():
    return _load("mnist_net_l1l2.npz")


# ----------------------------------------------------------------------------- front end


def test_dog_kernels_bit_exact(frontend_std):
    params = frontend_std["dog_params"]
    for i, p in enumerate(params):
        np.testing.assert_array_equal(F.dog_kernel(*p), frontend_std[f"dog_kernel_{i}"])
    np.testing.assert_array_equal(F.dog_filter_bank(params), frontend_std["filter_kernels"])
    # the Mozafari constants are the fixture's
    np.testing.assert_array_equal(F.dog_filter_bank(F.MOZAFARI_DOG), frontend_std["filter_kernels"])


def test_filter_normalisation_latency(frontend_std):
    d = frontend_std
    T = int(d["timesteps"])
    enc = F.dog_latency(d["dog_params"], int(d["filter_padding"]), float(d["filter_threshold"]), int(d["norm_radius"]), T)
    np.testing.assert_array_equal(d["image_in"], d["image_u8"].astype(np.float32))
    kernels = jnp.asarray(d["filter_kernels"])
    for j in range(d["image_in"].shape[0]):
        img = jnp.asarray(d["image_u8"][j])
        raw = F.dog_filter(img, kernels, int(d["filter_padding"]), None)
        np.testing.assert_allclose(raw, d["conv_raw"][j], rtol=1e-5, atol=1e-2)
        filt = F.dog_filter(img, kernels, int(d["filter_padding"]), float(d["filter_threshold"]))
        np.testing.assert_allclose(filt, d["filtered"][j], rtol=1e-5, atol=1e-2)
        np.testing.assert_allclose(enc.normalized(img), d["normalized"][j], rtol=1e-5, atol=1e-5)
        # latency coding from the stored normalised map: exact
        first, nnz, bin_size = F.latency_ranks(jnp.asarray(d["normalized"][j]), T)
        assert int(nnz) == d["nonzero_count"][j] and int(bin_size) == d["bin_size"][j]
        np.testing.assert_array_equal(np.where(np.asarray(first) == T, -1, np.asarray(first)), d["first_bin"][j])
        np.testing.assert_array_equal(F.intensity_to_latency(jnp.asarray(d["normalized"][j]), T), d["latency_intensity"][j])
        # end to end from the uint8 image: exact spike waves
        np.testing.assert_array_equal(enc.encode(None, img), d["spike_wave"][j])
    lat = enc.latency_batch(d["image_u8"])
    np.testing.assert_array_equal(jax.vmap(lambda l: F.latency_to_wave(l, T))(jnp.asarray(lat)), d["spike_wave"])


# ----------------------------------------------------------------------------- fire / pointwise


@pytest.mark.parametrize("kind", ["cum", "raw"])
@pytest.mark.parametrize("tname", ["thr", "none"])
def test_fire_and_threshold(fire_pw, kind, tname):
    d = fire_pw
    theta = float(d["threshold"]) if tname == "thr" else None
    pot = jnp.asarray(d[f"pot_{kind}"])
    spk, thp = jax.jit(L.fire, static_argnums=1)(pot, theta)
    np.testing.assert_array_equal(spk, d[f"spk_{kind}_{tname}"])
    np.testing.assert_array_equal(thp, d[f"thp_{kind}_{tname}"])
    np.testing.assert_array_equal(L.threshold(pot, theta), d[f"threshold_fn_{kind}_{tname}"])


def test_fire_negative_threshold(fire_pw):
    spk, _ = L.fire(jnp.asarray(fire_pw["pot_raw"]), float(fire_pw["neg_threshold"]))
    np.testing.assert_array_equal(spk, fire_pw["spk_raw_negthr"])


@pytest.mark.parametrize("kind", ["cum", "raw", "small"])
def test_pointwise_inhibition(fire_pw, kind):
    out = jax.jit(I.pointwise_inhibition)(jnp.asarray(fire_pw[f"pw_in_{kind}"]))
    np.testing.assert_array_equal(out, fire_pw[f"pw_out_{kind}"])


# ----------------------------------------------------------------------------- k winners

# One compile per input shape: the greedy selection is sequential, so the first k of 8 winners are
# the k winners; the radius is a traced argument.
_kwin8 = jax.jit(lambda pot, spk, r: I.winners_from_scores(I.winner_scores(pot, spk), 8, r))
_kwin8_nospk = jax.jit(lambda pot, r: I.winners_from_scores(I.winner_scores(pot, None), 8, r))
_kwin = jax.jit(I.k_winners, static_argnums=(1, 2))


@pytest.mark.parametrize("shape_i", [0, 1, 2])
@pytest.mark.parametrize("variant", ["float", "int", "indep", "nospk"])
def test_k_winners_all_variants(kw, shape_i, variant):
    pot = jnp.asarray(kw[f"s{shape_i}_{variant}_pot"])
    assert pot.shape == tuple(kw["shapes"][shape_i])
    spk = None if variant == "nospk" else jnp.asarray(kw[f"s{shape_i}_{variant}_spk"])
    assert max(int(k) for k, _ in kw["kw_params"]) <= 8
    for k, r in kw["kw_params"]:
        expected = kw[f"s{shape_i}_{variant}_k{k}_r{r}"]
        got = _kwin8_nospk(pot, r) if spk is None else _kwin8(pot, spk, r)
        np.testing.assert_array_equal(got.index[:k], expected, err_msg=f"s{shape_i} {variant} k={k} r={r}")
        np.testing.assert_array_equal(got.valid[:k], expected[:, 0] >= 0)
    # the public function with static k and radius, on one (k, r) per case
    k, r = (int(v) for v in kw["kw_params"][2])
    np.testing.assert_array_equal(I.k_winners(pot, k, r, spk).index, kw[f"s{shape_i}_{variant}_k{k}_r{r}"])


def test_k_winners_extras(kw):
    for k in (1, 3):
        got = _kwin(jnp.asarray(kw["l3_pot"]), k, 0, jnp.asarray(kw["l3_spk"]))
        np.testing.assert_array_equal(got.index, kw[f"l3_k{k}_r0"])
    for r in (0, 1):
        np.testing.assert_array_equal(_kwin(jnp.asarray(kw["tie_pot"]), 5, r, None).index, kw[f"tie_k5_r{r}"])
    got = _kwin(jnp.zeros((4, 3, 5, 5), jnp.float32), 3, 0, None)
    np.testing.assert_array_equal(got.index, kw["zero_k3_r0"])
    assert not bool(got.valid.any())


def test_last_step_winner_equals_full_k_winners(kw):
    pot = jnp.asarray(kw["l3_pot"])
    spk, _ = L.fire(pot, None)
    full = I.k_winners(pot, 1, 0, spk)
    fast = I.last_step_winner(pot[-1], pot.shape[0])
    np.testing.assert_array_equal(fast.index, full.index)
    np.testing.assert_array_equal(fast.index, kw["l3_k1_r0"])


# ----------------------------------------------------------------------------- conv / pool / STDP


def test_conv_fire_pool(cps):
    d = cps
    spk_in, w = jnp.asarray(d["spk_in"]), jnp.asarray(d["weight"])
    for impl in ("dot", "xla", "nhwc"):
        np.testing.assert_allclose(L.conv(spk_in, w, impl=impl), d["conv_out"], rtol=1e-5, atol=1e-4)
    spk, thp = L.fire(L.conv(spk_in, w), float(d["threshold"]))
    np.testing.assert_array_equal(spk, d["spk_out"])
    np.testing.assert_allclose(thp, d["pot_th"], rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(L.fire(jnp.asarray(d["conv_out"]), float(d["threshold"]))[1], d["pot_th"])
    k, s, p = (int(v) for v in d["pool_params"])
    conv_out, spk_out = jnp.asarray(d["conv_out"]), jnp.asarray(d["spk_out"])
    np.testing.assert_array_equal(L.pool(spk_out, k, s, p), d["pool_spk"])
    np.testing.assert_array_equal(L.pool(conv_out, k, s, p), d["pool_pot"])
    np.testing.assert_array_equal(L.pool(conv_out - 20, k, s, p), d["pool_potneg"])
    np.testing.assert_array_equal(L.pool(spk_out, k), d["pool_nostride_spk"])
    np.testing.assert_array_equal(L.pad(L.pool(spk_out, 2, 2), 1), d["pool_then_pad_spk"])
    # uint8 waves pool the same way
    np.testing.assert_array_equal(L.pool(spk_out.astype(jnp.uint8), k, s, p), d["pool_spk"].astype(np.uint8))


def test_stdp_inputs(cps):
    d = cps
    pot = I.pointwise_inhibition(jnp.asarray(d["pot_th"]))
    np.testing.assert_array_equal(pot, d["stdp_pot"])
    np.testing.assert_array_equal(jnp.sign(pot), d["stdp_spk_out"])
    k, r = (int(v) for v in d["stdp_kwta"])
    np.testing.assert_array_equal(I.k_winners(pot, k, r, jnp.sign(pot)).index, d["stdp_winners"])
    kern = tuple(int(v) for v in d["conv_kernel"])
    np.testing.assert_array_equal(
        S.stdp_pairings(jnp.asarray(d["spk_in"]), jnp.asarray(d["stdp_spk_out"]), jnp.asarray(d["stdp_winners"]), kern),
        d["stdp_pairings"].astype(bool))
    np.testing.assert_array_equal(
        S.stdp_pairings(jnp.asarray(d["spk_in"]), jnp.asarray(d["stdp_spk_out"]),
                        jnp.asarray(d["stdp_custom_winners_winners"]), kern),
        d["stdp_custom_winners_pairings"].astype(bool))


_stdp = jax.jit(S.stdp_update, static_argnames=("lb", "ub", "stabilizer", "clamp_all"))


@pytest.mark.parametrize("config", ["ltp_stab_01", "ltp_nostab_01", "ltp_stab_28", "ltp_nostab_28", "anti_nostab_28",
                                    "anti_stab_01", "perfeat_stab_01", "internal_k3_r2", "custom_winners"])
def test_stdp_configs_bit_exact(cps, config):
    d = cps
    assert config in list(d["stdp_config_names"])
    lr, sb, winners = d[f"stdp_{config}_lr"], d[f"stdp_{config}_stab_bounds"], d[f"stdp_{config}_winners"]
    if config == "internal_k3_r2":  # the rule picked its own winners (k=3, r=2)
        got = I.k_winners(jnp.asarray(d["stdp_pot"]), 3, 2, jnp.asarray(d["stdp_spk_out"]))
        np.testing.assert_array_equal(got.index, winners)
    w = jnp.asarray(d["weight"])
    new = _stdp(w, jnp.asarray(d["spk_in"]), jnp.asarray(d["stdp_spk_out"]), jnp.asarray(winners), jnp.asarray(lr[:, 0]),
                jnp.asarray(lr[:, 1]), lb=float(sb[1]), ub=float(sb[2]), stabilizer=bool(sb[0]), clamp_all=True)
    np.testing.assert_array_equal(new, d[f"stdp_{config}_w_after"])
    # clamping only the updated kernels: winners' kernels identical, the others untouched
    part = _stdp(w, jnp.asarray(d["spk_in"]), jnp.asarray(d["stdp_spk_out"]), jnp.asarray(winners), jnp.asarray(lr[:, 0]),
                 jnp.asarray(lr[:, 1]), lb=float(sb[1]), ub=float(sb[2]), stabilizer=bool(sb[0]), clamp_all=False)
    won = np.zeros(w.shape[0], bool)
    won[winners[:, 0][winners[:, 0] >= 0]] = True
    np.testing.assert_array_equal(np.asarray(part)[won], d[f"stdp_{config}_w_after"][won])
    np.testing.assert_array_equal(np.asarray(part)[~won], d["weight"][~won])


def test_stdp_rule_object_matches_fixture(cps):
    d = cps
    rule = S.spyketorch_stdp(0.004, -0.003, lb=0.0, ub=1.0, stabilizer=True)
    w = jnp.asarray(d["weight"])
    act = S.ConvActivity(jnp.asarray(d["spk_in"]), jnp.asarray(d["stdp_spk_out"]), jnp.asarray(d["stdp_ltp_stab_01_winners"]))
    new, state = rule.update(w, rule.init(w), act)
    np.testing.assert_array_equal(new, d["stdp_ltp_stab_01_w_after"])
    assert int(state.count) == 1


# ----------------------------------------------------------------------------- MNIST layers 1 + 2


@pytest.mark.parametrize("conv_impl", ["dot", "events"])
def test_mozafari_layers_1_2_two_images(mnist, conv_impl):
    d = mnist
    T = 15
    l1, l2 = N.mozafari2019(conv_impl=conv_impl).layers
    rule = S.spyketorch_stdp()
    lat_in = jnp.stack([F.wave_to_latency(jnp.asarray(d["input_spikes"][i])) for i in range(2)])
    np.testing.assert_array_equal(jax.vmap(lambda l: F.latency_to_wave(l, T))(lat_in), d["input_spikes"])

    def phase(layer):
        def step(carry, lat):
            w, st = carry
            out = N.layer_train_forward(layer, w, lat, T)
            new, st = rule.update(w, st, S.ConvActivity(out.spk_in, out.spk, out.winners))
            return (new, st), (out.spk_in, out.spk, out.winners.index, new - w)

        return jax.jit(lambda w0, lats: jax.lax.scan(step, (w0, rule.init(w0)), lats))

    # phase 1: layer 1 learns on the two images, in order, inside one scan
    (w1, _), (_, spk, win, delta) = phase(l1)(jnp.asarray(d["conv1_w0"]), lat_in)
    for i in range(2):
        np.testing.assert_array_equal(win[i], d[f"l1_img{i}_winners"])
        np.testing.assert_array_equal(spk[i], d[f"l1_img{i}_spk"])
        np.testing.assert_array_equal(delta[i], d[f"l1_img{i}_conv1_delta"])
    np.testing.assert_array_equal(w1, d["conv1_w_after_phase1"])

    # phase 2: layer 2 learns on the cached (pooled, frozen) layer-1 outputs
    cached = N.layer_outputs(jnp.asarray(d["conv1_w_after_phase1"]), lat_in, l1, T)
    assert cached.dtype == jnp.uint8
    (_, _), (spk_in, spk, win, delta) = phase(l2)(jnp.asarray(d["conv2_w0"]), cached)
    for i in range(2):
        np.testing.assert_array_equal(spk_in[i], d[f"l2_img{i}_spk_in"])
        np.testing.assert_array_equal(win[i], d[f"l2_img{i}_winners"])
        np.testing.assert_array_equal(spk[i], d[f"l2_img{i}_spk"])
        np.testing.assert_array_equal(delta[i], d[f"l2_img{i}_conv2_delta"])
