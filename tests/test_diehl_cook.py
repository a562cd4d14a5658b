"""``diehl-cook``: label assignment and prediction worked by hand (the tiny run is pinned in test_golden.py)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from snnjax_plugins.experiments.diehl_cook import assign_labels, predict


def test_each_neuron_is_assigned_the_class_with_its_highest_mean_response():
    # 5 images (labels 0, 0, 1, 2, 2) × 4 neurons
    counts = jnp.array([
        [4, 0, 1, 0],
        [2, 0, 1, 0],  # class 0 means: [3, 0, 1, 0]
        [0, 5, 3, 0],  # class 1 means: [0, 5, 3, 0]
        [1, 1, 0, 2],
        [1, 3, 0, 0],  # class 2 means: [1, 2, 0, 1]
    ])
    labels = jnp.array([0, 0, 1, 2, 2])
    # neuron 0: 3 > 1 > 0 → 0; neuron 1: 5 > 2 → 1; neuron 2: 3 > 1 → 1; neuron 3: 1 (class 2) > 0 → 2.
    # A mean (not a sum) decides: neuron 2 answers class 0 twice with 1 spike (sum 2) and class 1 once with 3.
    np.testing.assert_array_equal(np.asarray(assign_labels(counts, labels, 3)), [0, 1, 1, 2])
    # a class without images does not win over one with responses; a silent neuron goes to class 0
    np.testing.assert_array_equal(np.asarray(assign_labels(jnp.array([[0, 2]]), jnp.array([1]), 4)), [0, 1])


def test_prediction_is_the_class_whose_neurons_respond_most_on_average():
    assignment = jnp.array([0, 0, 1, 2])  # two neurons for class 0, one each for 1 and 2
    counts = jnp.array([
        [3, 1, 0, 0],  # class 0 mean 2 > 0 → 0
        [2, 2, 3, 0],  # class 0 mean 2 < class 1 mean 3 → 1
        [4, 0, 1, 3],  # class 0 mean 2 < class 2 mean 3 → 2 (a sum would say class 0: 4 > 3)
        [0, 0, 1, 0],  # only class 1's neuron fires → 1
    ])
    np.testing.assert_array_equal(np.asarray(predict(counts, assignment, 3)), [0, 1, 2, 1])
    # a class no neuron is assigned to never wins
    assert int(predict(jnp.array([[1, 1, 1, 1]]), assignment, 4)[0]) != 3
