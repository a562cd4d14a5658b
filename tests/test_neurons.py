"""Neuron models and the Poisson encoder: closed forms, validation, properties."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snnjax.errors import ConfigError, InputError
from snnjax_plugins.encoders import poisson, sample_candidates
from snnjax_plugins.neurons import ConductanceLIF, conductance_lif, inhibitory_lif, lif, snnjax_neuron_models


def run(model, s, n, dge=0.0, dgi=0.0):
    def body(s, _):
        s = s._replace(ge=jnp.full_like(s.ge, dge), gi=jnp.full_like(s.gi, dgi))
        s, sp = model.step(s)
        return s, sp

    return jax.lax.scan(body, s, None, length=n)


@pytest.mark.parametrize("method", ["euler", "exponential_euler"])
def test_conductance_lif_steady_state(method):
    # constant conductances, no spiking: v → (v_rest + ge E_e + gi E_i)/(1 + ge + gi)
    # (float64: in float32 Euler increments below half an ulp stall ~1e-3 mV short of it)
    with jax.enable_x64(True):
        m = conductance_lif(method=method, threshold_form="none", v_th_mv=100.0, dt_ms=0.1)
        s = m.init(1, jnp.float64)
        ge, gi = 0.3, 0.2
        s, _ = jax.jit(lambda s: run(m, s, 20000, ge, gi))(s)
        want = (-60.0 + ge * 0.0 + gi * -100.0) / (1 + ge + gi)
        np.testing.assert_allclose(float(s.v[0]), want, atol=1e-9)


def test_theta_threshold_rises_and_decays():
    m = ConductanceLIF(dt_ms=0.5, method="exponential_euler", threshold_form="theta", theta_plus_mv=0.05, tau_theta_ms=100.0)
    s = m.init(1)
    s = m.reset(s, jnp.array([True]))
    assert float(s.theta[0]) == pytest.approx(0.05)
    for _ in range(200):
        s, _ = m.integrate(s)
    assert float(s.theta[0]) == pytest.approx(0.05 * math.exp(-100 / 100.0), rel=1e-5)


def test_vt_threshold_rises_and_relaxes():
    m = conductance_lif(threshold_form="vt", dt_ms=0.1)
    s = m.reset(m.init(1), jnp.array([True]))
    assert float(s.vt[0]) == pytest.approx(-49.0)
    for _ in range(10):
        s, _ = m.integrate(s)
    want = -52 + 3 * (1 - 0.1 / 150) ** 10  # Euler form
    assert float(s.vt[0]) == pytest.approx(want, rel=1e-6)


def test_refractory_brian_semantics():
    # constantly driven: ISI = timestep(refractory, dt) exactly
    m = conductance_lif(threshold_form="none", dt_ms=0.1, refractory_ms=5.0)
    _, sp = jax.jit(lambda s: run(m, s, 600, 5.0, 0.0))(m.init(1))
    steps = np.nonzero(np.asarray(sp[:, 0]))[0]
    assert len(steps) > 3 and set(np.diff(steps)) == {50}


def test_hold_when_refractory():
    m = conductance_lif(threshold_form="none", hold_when_refractory=True, refractory_ms=5.0, dt_ms=0.1)
    s = m.reset(m.init(1), jnp.array([True]))
    v0 = float(s.v[0])
    for _ in range(49):
        s, nr = m.integrate(s)
        assert not bool(nr[0]) and float(s.v[0]) == v0
    s, nr = m.integrate(s)
    assert bool(nr[0]) and float(s.v[0]) != v0


@settings(max_examples=15, deadline=None)
@given(v0=st.floats(-120, -53), method=st.sampled_from(["euler", "exponential_euler"]))
def test_no_input_relaxes_to_rest_and_never_spikes(v0, method):
    m = conductance_lif(method=method, threshold_form="none", v_init_mv=v0, dt_ms=0.5)
    s, sp = _free_run(m)
    assert not bool(jnp.any(sp))
    assert abs(float(s.v[0]) + 60.0) < abs(v0 + 60.0) + 1e-9
    assert abs(float(s.v[0]) + 60.0) < 0.01 * max(1.0, abs(v0 + 60.0))


_free_cache = {}


def _free_run(m):
    if m not in _free_cache:
        _free_cache[m] = jax.jit(lambda s: run(m, s, 4000))
    return _free_cache[m](m.init(1))


def test_lif_current_based():
    m = lif(dt_ms=0.1, tau_m_ms=10.0, tau_syn_ms=0.0, v_th_mv=-50.0, v_rest_mv=-65.0, v_init_mv=-65.0)
    s = m.init(2)
    s, sp = m.step(s, jnp.array([20.0, 1.0]))
    assert not bool(jnp.any(sp))  # input arrives in the synapse slot, after the threshold
    s, sp = m.step(s)
    assert np.asarray(sp).tolist() == [True, False]


@pytest.mark.parametrize("bad", [dict(dt_ms=0.0), dict(dt_ms=-1.0), dict(tau_m_ms=0.0), dict(tau_ge_ms=-2.0), dict(method="rk4"),
                                 dict(threshold_form="adaptive")])
def test_invalid_params(bad):
    with pytest.raises(ConfigError):
        conductance_lif(**bad)


def test_invalid_lif_and_inh():
    with pytest.raises(ConfigError):
        lif(tau_m_ms=-1.0)
    with pytest.raises(ConfigError):
        inhibitory_lif(dt_ms=0)


def test_registered():
    assert set(snnjax_neuron_models()) == {"lif", "conductance-lif", "inhibitory-lif", "dc15-lif", "dc15-inhibitory-lif"}
    from snnjax.plugins import build_registry

    reg = build_registry()
    assert {"lif", "conductance-lif", "inhibitory-lif"} <= set(reg.names("neuron"))
    assert {"poisson"} <= set(reg.names("encoder"))


# ---- encoder --------------------------------------------------------------------------------


@settings(max_examples=8, deadline=None)
@given(pixel=st.integers(0, 255), seed=st.integers(0, 2**31 - 1))
def test_poisson_rate_matches(pixel, seed):
    enc = poisson(dt_ms=0.5)
    img = jnp.full((50,), float(pixel))
    r = enc.encode(jax.random.key(seed), img, 2000)
    p = pixel / 255 * 63.75 * 0.5e-3
    n = 50 * 2000
    mean = float(r.mean())
    assert abs(mean - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-9


def test_sparse_sampler_is_bernoulli():
    # the thinning sampler gives Bernoulli(p_i) per cell: compare per-input counts with their expectation
    p = jnp.asarray(np.r_[np.linspace(0.001, 0.05, 60), np.zeros(40)], jnp.float32)
    T = 400
    c = sample_candidates(jax.random.key(3), p, T, 100000, 16)
    keep = np.asarray(c.idx)[np.asarray(c.pos) < T * int(c.n_active)]
    counts = np.bincount(keep[keep < 100], minlength=100)
    assert counts[60:].sum() == 0
    z = (counts[:60] - T * np.asarray(p[:60])) / np.sqrt(T * np.asarray(p[:60]) * (1 - np.asarray(p[:60])))
    assert abs(z.mean()) < 0.6 and np.abs(z).max() < 5
    assert int(c.known_until) == T * int(c.n_active)


@pytest.mark.parametrize("img", [np.full(784, np.nan), -np.ones(784), np.ones((2, 3, 4))])
def test_encoder_rejects_bad_images(img):
    with pytest.raises(InputError):
        poisson().encode(jax.random.key(0), img, 5)
