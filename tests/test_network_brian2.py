"""Spike-for-spike agreement with the Brian 2 golden fixtures (float64 exact spikes; float32 within README §7)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snnjax_plugins.network import dc15_config, init_network, present_raster, thesis_config, with_delays
from snnjax_plugins.neurons import DC15_EXC, DC15_INH, ConductanceLIF, conductance_lif
from snnjax_plugins.rules import TraceSTDPParams, _trace_rule, segment_gate, segment_supervised, stdp_dc15
from snnjax.plasticity import Activity

from tests.conftest import fixture_path


DTYPES = ["float64", "float32"]


@pytest.fixture(params=DTYPES)
def precision(request):
    x64 = request.param == "float64"
    with jax.enable_x64(x64):
        yield request.param


def load(name):
    return np.load(fixture_path("brian2", f"{name}.npz"))


def spike_list(raster):
    step, idx = np.nonzero(np.asarray(raster))
    return step, idx


def assert_same_spikes(raster, want_step, want_idx):
    step, idx = spike_list(raster)
    if not (np.array_equal(step, want_step) and np.array_equal(idx, want_idx)):
        n = min(len(step), len(want_step))
        bad = np.nonzero((step[:n] != want_step[:n]) | (idx[:n] != want_idx[:n]))[0]
        first = bad[0] if len(bad) else n
        pytest.fail(f"spikes differ from spike #{first}: got {list(zip(step[first:first+3], idx[first:first+3]))}, "
                    f"want {list(zip(want_step[first:first+3], want_idx[first:first+3]))}; counts {len(step)} vs {len(want_step)}")


def _single_neuron_run(f, model, n_steps, v2_onsets=None):
    dge = np.zeros(n_steps)
    np.add.at(dge, f["in_exc_step"], f["w_exc"][f["in_exc_idx"]])
    dgi = np.zeros(n_steps)
    np.add.at(dgi, f["in_inh_step"], f["w_inh"][f["in_inh_idx"]])
    onset = np.zeros(n_steps, bool)
    if v2_onsets is not None:
        onset[np.asarray(v2_onsets)] = True
    fdt = jnp.zeros((), float).dtype
    s0 = model.init(1, fdt)

    def body(s, x):
        ge_in, gi_in, on = x
        s = jax.lax.cond(on, model.onset, lambda z: z, s) if v2_onsets is not None else s
        rec = (s.v[0], s.ge[0], s.gi[0], s.vt[0])
        s, sp = model.step(s, ge_in.astype(fdt), gi_in.astype(fdt))
        return s, (rec, sp[0])

    _, (rec, sp) = jax.jit(lambda: jax.lax.scan(body, s0, (jnp.asarray(dge, fdt), jnp.asarray(dgi, fdt), jnp.asarray(onset))))()
    return [np.asarray(r) for r in rec], np.asarray(sp)


def test_thesis_exc_neuron(precision):
    f = load("thesis_exc_neuron")
    model = conductance_lif(threshold_form="none", dt_ms=float(f["dt_ms"]), v_init_mv=float(f["v0_mV"]))
    (v, ge, gi, _), sp = _single_neuron_run(f, model, int(f["n_steps"]))
    np.testing.assert_array_equal(np.nonzero(sp)[0], f["spike_step"])
    np.testing.assert_allclose(v, f["v_mV"], atol=1e-3)
    np.testing.assert_allclose(ge, f["ge"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gi, f["gi"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("form", ["copy_", "cont_"])
def test_thesis_adaptive_threshold(precision, form):
    f = load("thesis_adaptive_threshold")
    n = len(f[f"{form}v_mV"])
    tf = "vt-copy" if form == "copy_" else "vt"
    model = conductance_lif(threshold_form=tf, dt_ms=float(f["dt_ms"]))
    onsets = f["segment_onsets_step"] if form == "copy_" else None
    (v, ge, gi, vt), sp = _single_neuron_run(f, model, n, onsets)
    np.testing.assert_array_equal(np.nonzero(sp)[0], f[f"{form}spike_step"])
    np.testing.assert_allclose(v, f[f"{form}v_mV"], atol=1e-3)
    np.testing.assert_allclose(vt, f[f"{form}vt_mV"], atol=1e-3)


def test_stdp_pairs(precision):
    f = load("stdp_pairs")
    n_steps, n = int(f["n_steps"]), len(f["syn_lr1"])
    pre = np.zeros((n_steps, n), bool)
    pre[f["pre_step"], f["pre_syn"]] = True
    post = np.zeros((n_steps, n), bool)
    post[f["post_step"], f["post_syn"]] = True
    fdt = jnp.zeros((), float).dtype
    lr1, lr2 = jnp.asarray(f["syn_lr1"], fdt), jnp.asarray(f["syn_lr2"], fdt)
    p = TraceSTDPParams(a_pre=float(f["dApre"]), a_post=float(f["dApost"]), w_max=float(f["gmax"]))
    # all-to-all n×n; the diagonal synapse k→k evolves exactly like the fixture's one-to-one synapse k
    rule = _trace_rule(p, lambda a, n_post, dt: (lr1, lr2))
    w0 = jnp.full((n, n), float(f["w0"]), fdt)

    def body(c, x):
        w, s = c
        pr, po = x
        a = Activity(pre=pr, post=po, dt_ms=float(f["dt_ms"]), pre_idx=jnp.nonzero(pr, size=2, fill_value=n)[0],
                     post_idx=jnp.nonzero(po, size=2, fill_value=n)[0])
        w, s = rule.update(w, s, a)
        return (w, s), jnp.diagonal(w)

    (w, _), wd = jax.jit(lambda: jax.lax.scan(body, (w0, rule.init(w0)), (jnp.asarray(pre), jnp.asarray(post))))()
    tol = dict(atol=1e-15) if precision == "float64" else dict(atol=1e-7, rtol=1e-5)
    np.testing.assert_allclose(np.diagonal(np.asarray(w)), f["w_final"], **tol)
    np.testing.assert_allclose(np.asarray(wd)[f["ev_step"], f["ev_syn"]], f["ev_w_after"], **tol)


THESIS_CFG = thesis_config()
THESIS_RULE = segment_supervised(n_classes=3)
REC = ("exc_spikes", "inh_spikes", "exc_v", "exc_vt")
# one jitted function for both thesis network tests: compiled once per precision
_thesis_run = jax.jit(lambda s, r, g: present_raster(s, r, THESIS_CFG, THESIS_RULE, learn=1.0, gate=g, record=REC))


def _thesis_setup(f, fdt):
    cfg, rule = THESIS_CFG, THESIS_RULE
    st = init_network(jax.random.key(0), cfg, rule, fdt)
    st = st._replace(w=jnp.asarray(f["W_init"], fdt))
    return cfg, rule, with_delays(st, cfg, f["S2_delay_steps"], f["S3_delay_steps"])


def test_thesis_network_one_image(precision):
    f = load("thesis_network_one_image")
    fdt = jnp.zeros((), float).dtype
    cfg, rule, st = _thesis_setup(f, fdt)
    raster = np.zeros((cfg.steps_present, 784), bool)
    raster[f["in_step"], f["in_idx"]] = True
    gate = segment_gate(int(f["target_segment"]), 30, 3, fdt)
    st2, out = _thesis_run(st, raster, gate)
    assert_same_spikes(out.monitors["exc_spikes"], f["exc_spike_step"], f["exc_spike_i"])
    assert_same_spikes(out.monitors["inh_spikes"], f["inh_spike_step"], f["inh_spike_i"])
    np.testing.assert_array_equal(np.asarray(out.exc_counts), f["exc_count"])
    np.testing.assert_allclose(np.asarray(st2.w), f["W_final"], atol=1e-6 if precision == "float32" else 1e-14)
    np.testing.assert_allclose(np.asarray(out.monitors["exc_v"]), f["trace_exc_v_mV"], atol=1e-3)
    np.testing.assert_allclose(np.asarray(out.monitors["exc_vt"]), f["trace_exc_vt_mV"], atol=1e-3)
    np.testing.assert_allclose(np.asarray(st2.exc.vt), f["vt_final_mV"], atol=1e-3)


def test_thesis_network_two_images(precision):
    f = load("thesis_network_two_images")
    fdt = jnp.zeros((), float).dtype
    cfg, rule, st = _thesis_setup(f, fdt)
    run = _thesis_run
    onsets = f["image_onset_step"]
    for k, seg in enumerate(f["target_segments"]):
        raster = np.zeros((cfg.steps_present, 784), bool)
        sel = (f["in_step"] >= onsets[k]) & (f["in_step"] < onsets[k] + cfg.steps_total)
        raster[f["in_step"][sel] - onsets[k], f["in_idx"][sel]] = True
        st, out = run(st, raster, segment_gate(int(seg), 30, 3, fdt))
        np.testing.assert_array_equal(np.asarray(out.exc_counts), f["exc_count_per_image"][k])
        np.testing.assert_allclose(np.asarray(st.exc.vt), f["vt_after_image_mV"][k], atol=1e-3)
        esel = (f["exc_spike_step"] >= onsets[k]) & (f["exc_spike_step"] < onsets[k] + cfg.steps_total)
        assert_same_spikes(out.monitors["exc_spikes"], f["exc_spike_step"][esel] - onsets[k], f["exc_spike_i"][esel])
    np.testing.assert_allclose(np.asarray(st.w), f["W_after_image2"], atol=1e-6 if precision == "float32" else 1e-14)


@pytest.mark.parametrize("name", ["dc15_one_image", "dc15_one_image_euler"])
def test_dc15_one_image(precision, name):
    f = load(name)
    meth = str(f["method"])
    fdt = jnp.zeros((), float).dtype
    cfg = dc15_config(100, exc=ConductanceLIF(dt_ms=0.5, **{**DC15_EXC, "method": meth}),
                      inh=ConductanceLIF(dt_ms=0.5, **{**DC15_INH, "method": meth}))
    rule = stdp_dc15()
    st = init_network(jax.random.key(0), cfg, rule, fdt)
    st = st._replace(w=jnp.asarray(f["W_raw"], fdt))
    raster = np.zeros((cfg.steps_present, 784), bool)
    raster[f["in_step"], f["in_idx"]] = True
    run = jax.jit(lambda s, r: present_raster(s, r, cfg, rule, learn=1.0, record=("exc_spikes", "inh_spikes")))
    st2, out = run(st, raster)
    assert_same_spikes(out.monitors["exc_spikes"], f["exc_spike_step"], f["exc_spike_i"])
    assert_same_spikes(out.monitors["inh_spikes"], f["inh_spike_step"], f["inh_spike_i"])
    np.testing.assert_allclose(np.asarray(st2.w), f["W_final"], atol=1e-6 if precision == "float32" else 1e-14)
    np.testing.assert_allclose(np.asarray(st2.exc.theta), f["theta_final_mV"], atol=1e-3)
    np.testing.assert_allclose(np.asarray(st2.exc.v), f["exc_v_final_mV"], atol=1e-3)
