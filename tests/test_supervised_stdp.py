"""Method 2 experiment: prediction rule, per-seed data, and that learning happens."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np

from snnjax.cli import main
from snnjax.config import resolve
from snnjax.plugins import get_registry
from snnjax_plugins.experiments.supervised_stdp import DEFAULTS, prepare_data
from snnjax_plugins.readout import segment_predict as predict


def test_predict_strict_and_thesis_tie_rules():
    counts = jnp.array([
        [0, 3, 0, 0, 1, 0],  # segment 0 wins (3 vs 1 vs 0)
        [1, 0, 0, 1, 0, 0],  # tie 1-1 between segments 0 and 1
        [0, 0, 0, 0, 0, 0],  # silence
        [0, 0, 0, 0, 2, 2],  # segment 2 wins
    ])
    np.testing.assert_array_equal(np.asarray(predict(counts, 3, "strict")), [0, -1, -1, 2])
    np.testing.assert_array_equal(np.asarray(predict(counts, 3, "thesis")), [0, 0, 0, 2])


def test_per_seed_data_are_deterministic_and_disjoint():
    cfg = resolve(DEFAULTS, ("test", {"n_test": 50}))
    a = prepare_data(cfg, range(3), get_registry())
    b = prepare_data(cfg, range(3), get_registry())
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.classes, b.classes)
    assert a.test_x.shape == (3, 50, 784)
    for i in range(3):
        assert len(set(a.classes[i].tolist())) == 3
        assert set(np.unique(a.train_seg[i])) == {0, 1, 2}
    # segment indices point at the seed's classes: the first seed's images carry the right digits
    fixed = prepare_data(resolve(DEFAULTS, ("test", {"classes": [7, 0, 3], "n_test": 20})), range(1), get_registry())
    np.testing.assert_array_equal(fixed.classes[0], [7, 0, 3])


def test_learning_beats_chance_quickly(tmp_path):
    """3 classes, 60 training images, 2 seeds: test accuracy far above chance (33 %)."""
    out = tmp_path / "run"
    argv = ["run", "supervised-stdp", "--quiet", "--seeds", "2", "--out", str(out),
            "--set", "classes=0,1,7", "--set", "n_rounds=2", "--set", "images_per_round=30",
            "--set", "n_test=60", "--set", "dt_ms=0.5", "--set", "test_mode=parallel"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    final = results["metrics"]["final_accuracy"]
    assert np.mean(final["per_seed"]) > 70.0, final
    assert (out / "learning_curve.png").stat().st_size > 0
    assert (out / "receptive_fields.png").stat().st_size > 0
    spikes = np.load(out / "raster.npz")["spikes"]
    assert spikes.shape == (1000, 30) and spikes.any()  # dt 0.5 ms: 500 ms = 1000 steps
    from snnjax.report import plot_run

    drawn = {p.name for p in plot_run(out)}
    assert {"raster.png", "receptive_fields.png"} <= drawn
    assert results["extra"]["classes_per_seed"] == [[0, 1, 7], [0, 1, 7]]


def _numpy_baselines(train_x, train_y, test_x, test_y):
    """Template (cosine) and 1-NN accuracies (%), written out again independently of snnjax_plugins.readout."""
    train_x, test_x = train_x.astype(float), test_x.astype(float)
    classes = sorted(set(train_y.tolist()))
    templates = np.array([train_x[train_y == c].mean(0) for c in classes])
    cos = [[t @ x / (np.linalg.norm(t) * np.linalg.norm(x)) for t in templates] for x in test_x]
    template = np.mean(np.array(classes)[np.argmax(cos, axis=1)] == test_y)
    nearest = [train_y[np.argmin(((train_x - x) ** 2).sum(1))] for x in test_x]
    return 100 * template, 100 * np.mean(np.array(nearest) == test_y)


def test_baselines_in_results_equal_a_numpy_recomputation(tmp_path):
    """Per seed and per point of the curve, on the images that seed's network saw ("fresh": 10, then 20)."""
    out = tmp_path / "run"
    sets = {"n_rounds": "2", "images_per_round": "10", "n_test": "20", "dt_ms": "0.5", "test_mode": "parallel",
            "protocol": "fresh"}
    argv = ["run", "supervised-stdp", "--quiet", "--seeds", "2", "--out", str(out)]
    for k, v in sets.items():
        argv += ["--set", f"{k}={v}"]
    assert main(argv) == 0
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    data = prepare_data(resolve(DEFAULTS, ("test", sets)), range(2), get_registry())
    for point, n_seen in enumerate((10, 20)):
        for s in range(2):
            want = _numpy_baselines(data.train_x[s, :n_seen], data.train_seg[s, :n_seen], data.test_x[s],
                                    data.test_seg[s])
            got = (metrics["baseline_template_accuracy"]["per_seed"][s][point],
                   metrics["baseline_1nn_accuracy"]["per_seed"][s][point])
            np.testing.assert_allclose(got, want)
    assert metrics["baseline_template_accuracy"]["x"] == metrics["accuracy"]["x"] == [10, 20]
