"""NIR export / import: round trip through a file, the simulator's conventions, refusals, the CLI."""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest

nir = pytest.importorskip("nir")

from snnjax.cli import main  # noqa: E402
from snnjax.errors import ConfigError  # noqa: E402
from snnjax.plasticity import identity  # noqa: E402
from snnjax_plugins import network as net  # noqa: E402
from snnjax_plugins.conv import networks as conv_networks  # noqa: E402
from snnjax_plugins.nir_io import check_exportable, export_nir, import_nir, load_run, run_nir, simulate_nir  # noqa: E402

DT_MS = 0.5


def _small(delays: bool, n_exc: int = 6):
    cfg = net.thesis_config(n_exc=n_exc, dt_ms=DT_MS, t_present_ms=60.0, t_rest_ms=10.0,
                            s2_delay_max_ms=10.0 if delays else 0.0, s3_delay_max_ms=5.0 if delays else 0.0)
    st = net.init_network(jax.random.PRNGKey(1), cfg, identity())
    return cfg, st._replace(w=st.w * 4.0)  # a trained-looking, strong enough S1


def _raster(steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, 784)
    img[img < 150] = 0
    return (rng.random((steps, 784)) < img / 255 * 0.05).astype(np.float32)


@pytest.mark.parametrize("delays", [False, True])
def test_round_trip_through_a_file(tmp_path, delays):
    cfg, st = _small(delays)
    graph = export_nir(st, cfg)
    np.testing.assert_array_equal(graph.nodes["s1"].weight, np.asarray(st.w, np.float64).T)
    assert ("Delay" in {type(n).__name__ for n in graph.nodes.values()}) == delays
    path = tmp_path / "net.nir"
    nir.write(path, graph)
    back = nir.read(path)
    assert set(back.nodes) == set(graph.nodes)
    assert {tuple(e) for e in back.edges} == {tuple(e) for e in graph.edges}
    np.testing.assert_array_equal(back.nodes["s1"].weight, np.asarray(st.w, np.float64).T)
    assert "conductance" in str(back.nodes["exc"].metadata["approximation"])
    raster = _raster(cfg.steps_present)
    a = simulate_nir(graph, raster, dt=cfg.dt_ms * 1e-3)["output"]
    b = simulate_nir(back, raster, dt=cfg.dt_ms * 1e-3)["output"]
    assert float(a.sum()) > 0
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_exported_parameters():
    cfg, st = _small(delays=False)
    graph = export_nir(st, cfg)
    exc, inh = graph.nodes["exc"], graph.nodes["inh"]
    e = cfg.exc
    v_ref = 0.5 * (e.v_rest_mv + e.v_th_mv)
    np.testing.assert_allclose(exc.v_threshold, e.v_th_mv)  # vt-copy at test: fixed v_th
    np.testing.assert_allclose(exc.v_reset, e.v_reset_mv)
    np.testing.assert_allclose(exc.tau_mem, e.tau_m_ms * 1e-3)
    np.testing.assert_allclose(exc.tau_syn, e.tau_ge_ms * 1e-3)
    np.testing.assert_allclose(exc.r, e.e_exc_mv - v_ref)
    np.testing.assert_allclose(inh.v_threshold, cfg.inh.v_th_mv)
    np.testing.assert_allclose(graph.nodes["s2"].weight, cfg.w_ei * np.eye(6))
    s3 = graph.nodes["s3"].weight
    assert np.all(np.diag(s3) == 0) and np.all(s3[~np.eye(6, dtype=bool)] < 0)
    expected = cfg.w_ie * (e.e_inh_mv - v_ref) / (e.e_exc_mv - v_ref) * e.tau_gi_ms / e.tau_ge_ms
    np.testing.assert_allclose(s3[0, 1], expected)


def test_theta_threshold_is_folded_in_and_seed_is_selected():
    cfg = net.dc15_config(n_exc=4, t_present_ms=20.0, t_rest_ms=5.0)
    one = net.init_network(jax.random.PRNGKey(0), cfg, identity())
    st = jax.tree_util.tree_map(lambda x: np.stack([np.asarray(x)] * 3), one)
    st = st._replace(w=st.w * np.array([1.0, 2.0, 3.0], np.float32)[:, None, None])
    theta = np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5
    st = st._replace(exc=st.exc._replace(theta=theta))
    graph = export_nir(st, cfg, seed_index=2)
    np.testing.assert_allclose(graph.nodes["exc"].v_threshold, cfg.exc.v_th_mv + theta[2])
    w = np.asarray(st.w[2], np.float64)
    np.testing.assert_allclose(graph.nodes["s1"].weight, (w * 78.0 / w.sum(0)).T)  # D&C normalisation folded in
    with pytest.raises(ConfigError, match="seed_index"):
        export_nir(st, cfg, seed_index=3)


def test_delays_are_exact_nir_delay_nodes_or_refused_or_dropped():
    cfg, st = _small(delays=True)
    graph = export_nir(st, cfg)
    np.testing.assert_allclose(graph.nodes["s2_delay"].delay, np.asarray(st.d2) * cfg.dt_ms * 1e-3)
    # the S3 branches together carry every off-diagonal synapse exactly once, at its delay
    d3 = np.asarray(st.d3)
    total = np.zeros((6, 6))
    for name, node in graph.nodes.items():
        if name.startswith("s3_") and not name.startswith("s3_delay"):
            k = int(name.split("_")[1])
            assert np.all(d3.T[node.weight != 0] == k)
            total += node.weight != 0
    np.testing.assert_array_equal(total, ~np.eye(6, dtype=bool))
    with pytest.raises(ConfigError, match="delays"):
        export_nir(st, cfg, delays="refuse")
    dropped = export_nir(st, cfg, allow_drop_delays=True)
    assert not any(type(n).__name__ == "Delay" for n in dropped.nodes.values())
    assert "dropped" in dropped.metadata["snnjax_delays"]


def test_refusals():
    cfg, st = _small(delays=False)
    with pytest.raises(ConfigError, match="plasticity"):
        export_nir(st, cfg, learn=True)
    for kind in ("k-wta", "max-pool", "pointwise-inhibition", "plasticity"):
        with pytest.raises(ConfigError, match="cannot export"):
            check_exportable(kind)
    check_exportable("thesis")
    spec = conv_networks.mozafari2019()
    with pytest.raises(ConfigError, match=r"k-winners-take-all.*max pooling"):
        check_exportable(spec)
    with pytest.raises(ConfigError, match="k-winners-take-all"):
        export_nir(st, spec)


def _lif_graph(weight, bias, tau=0.01, thr=1.0):
    n = len(weight)
    return nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([1])}),
            "aff": nir.Affine(weight=np.asarray(weight, float).reshape(n, 1), bias=np.asarray(bias, float)),
            "lif": nir.LIF(tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, thr),
                           v_reset=np.zeros(n)),
            "out": nir.Output(output_type={"output": np.array([n])}),
        },
        edges=[("in", "aff"), ("aff", "lif"), ("lif", "out")],
    )


def test_hand_made_affine_lif_graph(tmp_path):
    """Input → Affine → LIF → Output: a spike is a unit-area impulse (Δv = R·w/τ); a bias is a constant current."""
    dt, tau = 1e-4, 0.01
    graph = _lif_graph([0.015, 0.005, 0.0], [0.0, 0.0, 2.0], tau=tau)
    nir.write(tmp_path / "h.nir", graph)
    graph = nir.read(tmp_path / "h.nir")
    x = np.zeros((1000, 1), np.float32)
    x[0] = 1.0
    out = np.asarray(simulate_nir(graph, x, dt=dt)["out"])
    assert out[:, 0].tolist().index(1.0) == 1 and out[:, 0].sum() == 1  # jump 1.5 > 1: fires on the next step
    assert out[:, 1].sum() == 0  # jump 0.5 < 1
    # constant drive R·b = 2 over threshold 1: period ≈ τ·ln(b/(b − 1)) (exact ODE), Euler close to it
    period = tau * math.log(2.0)
    assert abs(out[:, 2].sum() - 1000 * dt / period) <= 1.5


def test_delay_node_and_recurrence():
    """Input → Delay(3 steps) → Linear → LIF, and a self-inhibiting recurrent edge through a neuron."""
    dt = 1e-3
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type={"input": np.array([2])}),
            "d": nir.Delay(delay=np.array([3 * dt, 0.0])),
            "lin": nir.Linear(weight=np.eye(2) * 0.05),
            "lif": nir.LIF(tau=np.full(2, 0.02), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                           v_reset=np.zeros(2)),
            "rec": nir.Linear(weight=-np.eye(2)),
            "out": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("in", "d"), ("d", "lin"), ("lin", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")],
    )
    x = np.zeros((20, 2), np.float32)
    x[0] = 1.0
    net_, params = import_nir(graph, dt=dt)
    out = np.asarray(jax.jit(run_nir, static_argnums=0)(net_, params, x)["out"])
    assert np.nonzero(out[:, 0])[0].tolist() == [4]  # delayed by 3 steps, fires one step after arrival
    assert np.nonzero(out[:, 1])[0].tolist() == [1]


def test_import_refuses_unsupported_nodes():
    graph = nir.NIRGraph.from_list(nir.Input(input_type={"input": np.array([4])}), nir.LI(
        tau=np.ones(4), r=np.ones(4), v_leak=np.zeros(4)))
    with pytest.raises(ConfigError, match="LI"):
        import_nir(graph)


def _fake_run(tmp_path, n_exc=6, n_seeds=2):
    run = tmp_path / "run"
    run.mkdir()
    config = {"seed": 0, "n_exc": n_exc, "dt_ms": DT_MS, "adaptive_threshold": True}
    (run / "config.json").write_text(json.dumps({"experiment": "supervised-stdp", "seeds": n_seeds, "config": config}))
    w = np.random.default_rng(0).uniform(0, 0.2, (n_seeds, 784, n_exc)).astype(np.float32)
    np.savez_compressed(run / "weights.npz", W=w)
    return run, w


def test_cli_export_nir(tmp_path, capsys):
    run, w = _fake_run(tmp_path)
    out = tmp_path / "out.nir"
    assert main(["export-nir", str(run), str(out), "--seed", "1"]) == 0
    graph = nir.read(out)
    np.testing.assert_array_equal(graph.nodes["s1"].weight, w[1].astype(np.float64).T)
    # the delays are the ones the run drew, derived here without the CLI's code: seed 1 of the family
    # is fold_in(PRNGKey(seed), 1); the experiment splits it and initialises the network with the first half
    init_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(0), 1), 2)[0]
    drawn = net.init_network(init_key, net.thesis_config(n_exc=6, dt_ms=DT_MS), identity())
    np.testing.assert_allclose(graph.nodes["s2_delay"].delay, np.asarray(drawn.d2) * DT_MS * 1e-3)
    st, cfg = load_run(run, seed_index=1)
    np.testing.assert_array_equal(np.asarray(st.d2), np.asarray(drawn.d2))
    np.testing.assert_array_equal(np.asarray(st.d3), np.asarray(drawn.d3))
    other = net.init_network(jax.random.split(jax.random.fold_in(jax.random.PRNGKey(0), 0), 2)[0],
                             net.thesis_config(n_exc=6, dt_ms=DT_MS), identity())
    assert not np.array_equal(np.asarray(other.d2), np.asarray(drawn.d2))  # the seed matters: the check can fail
    assert main(["export-nir", str(run), str(tmp_path / "flat.nir"), "--drop-delays"]) == 0
    assert not any(type(n).__name__ == "Delay" for n in nir.read(tmp_path / "flat.nir").nodes.values())
    assert main(["export-nir", str(run), str(out), "--seed", "5"]) == 2
    assert main(["export-nir", str(tmp_path), str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 seed(s)" in err and "config.json" in err


@pytest.mark.slow
def test_cli_export_nir_of_a_real_run(tmp_path):
    """A real (tiny) supervised-stdp run, then export-nir, then nir.read (about 25 s on 2 cores: ``-m slow``)."""
    run = tmp_path / "run"
    assert main(["run", "supervised-stdp", "--quiet", "--out", str(run), "--set", "n_rounds=1",
                 "--set", "images_per_round=2", "--set", "n_test=3", "--set", "dt_ms=0.5", "--set", "n_exc=6"]) == 0
    assert main(["export-nir", str(run), str(tmp_path / "out.nir")]) == 0
    graph = nir.read(tmp_path / "out.nir")
    with np.load(run / "weights.npz") as z:
        np.testing.assert_array_equal(graph.nodes["s1"].weight, z["W"][0].astype(np.float64).T)
    out = simulate_nir(graph, _raster(40), dt=DT_MS * 1e-3)["output"]
    assert out.shape == (40, 6)
