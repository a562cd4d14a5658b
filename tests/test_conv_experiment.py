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


def test_tiny_end_to_end_run(golden_runs):
    """The pinned tiny run (tests/test_golden.py: 2 seeds, 16 training / 8 test images, one epoch of each layer,
    non-default k1/radius1 = 4/2, k2/radius2 = 6/2): the config's radii reach the run, and the reported
    accuracies, confusion counts and silence agree with each other."""
    res, out = golden_runs.doc("conv-mnist"), golden_runs.out("conv-mnist")
    m = res["metrics"]
    n_test = res["extra"]["n_test"]
    assert n_test == 8 and res["extra"]["n_train"] == 16
    acc = np.asarray(m["accuracy"]["per_seed"])
    assert acc.shape == (2, 1) and np.all((acc >= 0) & (acc <= 100))
    np.testing.assert_array_equal(m["final_accuracy"]["per_seed"], acc[:, -1])
    np.testing.assert_array_equal(m["best_accuracy"]["per_seed"], acc.max(axis=1))
    # accuracies are whole test images: multiples of 100 / n_test
    np.testing.assert_allclose(acc * n_test / 100, np.round(acc * n_test / 100), atol=1e-9)
    wall = res["extra"]["wall_s"]
    for layer in ("layer1", "layer2", "decision"):
        assert len(wall[layer]) == 1 and wall[layer][0] > 0
    assert res["extra"]["radii"] == [2, 2] and res["extra"]["thesis_task1_accuracy"] is None
    assert res["config"]["radius1"] == 2 and res["config"]["radius2"] == 2 and res["config"]["k1"] == 4
    diag = res["extra"]["diagnostics"]
    for layer in ("layer1", "layer2"):
        c = np.asarray(diag["convergence"][layer])
        assert c.shape == (2,) and np.all((c >= 0) & (c <= 0.25))
    assert np.all((np.asarray(diag["feature_density"]) >= 0) & (np.asarray(diag["feature_density"]) <= 1))
    ro = np.asarray(diag["feature_readout_accuracy"])
    assert ro.shape == (2,) and np.all((ro >= 0) & (ro <= 100))
    conf = np.asarray(diag["confusion"])
    assert conf.shape == (10, 11) and conf.sum() == 2 * n_test  # every test image of both seeds, once
    # the confusion diagonal holds exactly the correct answers of both seeds, its last column the silences
    assert np.trace(conf[:, :10]) == round(float(np.sum(acc[:, -1])) * n_test / 100)
    silence = np.asarray(m["silence_rate"]["per_seed"], dtype=float)
    assert silence.shape == (2,)
    assert conf[:, 10].sum() == round(float(np.sum(silence)) * n_test / 100)  # silence rate in percent
    assert (out / "accuracy.png").stat().st_size > 0


def test_radii_and_k_from_the_config_reach_the_network_spec():
    from snnjax_plugins.conv.pipeline import NETWORK_DEFAULTS, network_from_config

    spec = network_from_config({**NETWORK_DEFAULTS, "k1": 4, "radius1": 2, "k2": 6, "radius2": 0})
    (l1, l2) = spec.layers
    assert (l1.k, l1.radius, l2.k, l2.radius) == (4, 2, 6, 0)
    default = network_from_config(NETWORK_DEFAULTS)
    assert (default.layers[0].radius, default.layers[1].radius) == (NETWORK_DEFAULTS["radius1"], NETWORK_DEFAULTS["radius2"])


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
