"""The ``conv-mnist`` experiment and the shared conv task pipeline: a tiny end-to-end run, bad config."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snnjax.cli import main, prepare_run
from snnjax.errors import ConfigError
from snnjax.plugins import get_registry


def test_registered_once():
    names = get_registry().names("experiment")
    assert names.count("conv-mnist") == 1


def test_tiny_end_to_end_run(tmp_path):
    """2 seeds, 24 training / 12 test images, one epoch of each layer; the real Mozafari network."""
    out = tmp_path / "run"
    argv = ["run", "conv-mnist", "--quiet", "--seeds", "2", "--out", str(out), "--set", "n_train=24",
            "--set", "n_test=12", "--set", "epochs1=1", "--set", "epochs2=1", "--set", "epochs3=1",
            "--set", "radius1=3", "--set", "radius2=1"]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    m = res["metrics"]
    acc = np.asarray(m["accuracy"]["per_seed"])
    assert acc.shape == (2, 1) and np.all((acc >= 0) & (acc <= 100))
    assert np.asarray(m["final_accuracy"]["per_seed"]).shape == (2,)
    assert np.asarray(m["silence_rate"]["per_seed"]).shape == (2,)
    wall = res["extra"]["wall_s"]
    for layer in ("layer1", "layer2", "decision"):
        assert len(wall[layer]) == 1 and wall[layer][0] > 0
    assert res["extra"]["radii"] == [3, 1] and res["extra"]["thesis_task1_accuracy"] == 93.6
    diag = res["extra"]["diagnostics"]
    for layer in ("layer1", "layer2"):
        c = np.asarray(diag["convergence"][layer])
        assert c.shape == (2,) and np.all((c >= 0) & (c <= 0.25))
    assert np.all((np.asarray(diag["feature_density"]) >= 0) & (np.asarray(diag["feature_density"]) <= 1))
    ro = np.asarray(diag["feature_readout_accuracy"])
    assert ro.shape == (2,) and np.all((ro >= 0) & (ro <= 100))
    conf = np.asarray(diag["confusion"])
    assert conf.shape == (10, 11) and conf.sum() == 2 * 12  # every test image of both seeds, once
    assert (out / "accuracy.png").stat().st_size > 0


@pytest.mark.parametrize("sets, match", [
    (["radius1=-1"], "radius1"),
    (["radius2=1.5"], "radius2"),
    (["k1=0"], "k1"),
    (["network=lenet"], "network must be one of"),
    (["epochs3=0"], "epochs3"),
    (["n_train=10", "n_train_stdp=20"], "n_train_stdp"),
    (["adaptive_int=0"], "adaptive_int"),
    (["rstdp_reward=0.1"], "rstdp_reward"),
    (["feature_readout=maybe"], "feature_readout"),
])
def test_bad_config_is_rejected_before_anything_runs(sets, match):
    with pytest.raises(ConfigError, match=match):
        prepare_run("conv-mnist", sets)


def test_convergence_and_density_helpers():
    from snnjax_plugins.conv.pipeline import convergence, spike_density

    w = np.stack([np.full((4, 2, 3, 3), 0.5), np.where(np.arange(72).reshape(4, 2, 3, 3) % 2, 1.0, 0.0)])
    np.testing.assert_allclose(convergence(w), [0.25, 0.0])
    np.testing.assert_allclose(convergence(np.full((1, 5), 0.5), lb=0.2, ub=0.8), [0.25])
    cache = np.full((2, 3, 4, 2, 2), 15, np.uint8)
    cache[0, :, :2] = 0  # seed 0: half the neurons spike at step 0
    cache[1, 0, 0, 0, 0] = 14  # seed 1: one neuron of 48 spikes, at the last step
    np.testing.assert_allclose(spike_density(cache, 15), [0.5, 1 / 48])


def test_confusion_counts_silence_in_its_own_column():
    from snnjax_plugins.experiments.conv_mnist import confusion

    dec = np.array([[0, 1, -1], [0, 0, 2]])
    conf = confusion(dec, np.array([0, 1, 2]), 3)
    assert conf.tolist() == [[2, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]]
