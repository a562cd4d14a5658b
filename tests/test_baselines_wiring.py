"""The pixel baselines of plugins/readout.py in the results of diehl-cook, conv-mnist and continual."""

from __future__ import annotations

import json

import numpy as np

from snnjax import data
from snnjax.cli import main
from snnjax_plugins.experiments.continual import pixel_baselines
from snnjax_plugins.readout import nearest_neighbour_accuracy, template_accuracy


def _run(tmp_path, experiment, sets):
    out = tmp_path / experiment
    argv = ["run", experiment, "--quiet", "--seeds", "2", "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    return json.loads((out / "results.json").read_text())


def test_conv_mnist_reports_pixel_baselines_and_the_linear_readout(tmp_path):
    res = _run(tmp_path, "conv-mnist", ["n_train=24", "n_test=12", "epochs1=1", "epochs2=1", "epochs3=1"])
    m = res["metrics"]
    train = data.load("mnist-embedded", "train", limit=24)
    test = data.load("mnist-embedded", "test", limit=12)
    want_t = template_accuracy(train.images, train.labels, test.images, test.labels)
    want_n = nearest_neighbour_accuracy(train.images, train.labels, test.images, test.labels)
    np.testing.assert_allclose(m["baseline_template_accuracy"]["per_seed"], [want_t, want_t])
    np.testing.assert_allclose(m["baseline_1nn_accuracy"]["per_seed"], [want_n, want_n])
    np.testing.assert_allclose(m["baseline_linear_readout_accuracy"]["per_seed"],
                               res["extra"]["diagnostics"]["feature_readout_accuracy"])


def test_diehl_cook_reports_baselines_on_each_seeds_training_images(tmp_path):
    res = _run(tmp_path, "diehl-cook", ["n_exc=10", "n_train=20", "n_test=20", "assign_window=20", "chunk=20"])
    m = res["metrics"]
    train = data.load("mnist-embedded", "train")
    test = data.load("mnist-embedded", "test", limit=20)
    for s in range(2):  # seed s trains on the first 20 images of its own permutation
        order = np.random.default_rng([0, s]).permutation(len(train.labels))[:20]
        args = (train.images[order], train.labels[order], test.images, test.labels)
        assert m["baseline_template_accuracy"]["per_seed"][s] == template_accuracy(*args)
        assert m["baseline_1nn_accuracy"]["per_seed"][s] == nearest_neighbour_accuracy(*args)


def test_continual_pixel_baselines_by_hand():
    """Task 1: bright top-left vs bottom-right; task 2 the same classes on the other diagonal; shared outputs."""
    def img(r, c):
        x = np.zeros((2, 2), np.uint8)
        x[r, c] = 200
        return x

    x1, y1 = np.stack([img(0, 0), img(1, 1)]), np.array([0, 1])
    x2, y2 = np.stack([img(0, 1), img(1, 0)]), np.array([0, 1])
    out = pixel_baselines(((x1, y1, x1, y1), (x2, y2, x2, y2)), n_seeds=3)
    for name in ("task1", "task2", "task1_after_both"):
        np.testing.assert_array_equal(out[f"baseline_template_accuracy_{name}"], [100.0] * 3)
        np.testing.assert_array_equal(out[f"baseline_1nn_accuracy_{name}"], [100.0] * 3)
    # tested on task 2's images, task 1's templates are orthogonal to everything: a tie, class 0 wins
    out = pixel_baselines(((x1, y1, x2, y2), (x2, y2, x2, y2)), n_seeds=1)
    assert out["baseline_template_accuracy_task1"][0] == 50.0


def test_use_it_or_lose_it_reports_baselines_on_each_seeds_known_classes(golden_runs):
    """Seed s: its distinct training images (first pass) against its known-class test images."""
    from snnjax.config import resolve
    from snnjax_plugins.experiments import use_it_or_lose_it as uioli
    from tests.test_golden import CONFIGS

    doc = golden_runs.doc("use-it-or-lose-it")
    cfg = resolve(uioli.DEFAULTS, ("tiny", doc["config"]))
    assert CONFIGS["use-it-or-lose-it"][0] == doc["seeds"] == 2
    d = uioli.prepare_data(cfg, range(2), None)
    m = doc["metrics"]
    for s in range(2):
        args = (d.train_x[s], d.train_seg[s], d.test_x["known"][s], d.known_seg[s])
        assert m["baseline_template_accuracy"]["per_seed"][s] == template_accuracy(*args)
        assert m["baseline_1nn_accuracy"]["per_seed"][s] == nearest_neighbour_accuracy(*args)
