"""The trivial baselines of :mod:`snnjax_plugins.readout` on data small enough to check by eye."""

from __future__ import annotations

import numpy as np
import pytest

from snnjax_plugins.readout import (baselines_per_seed, nearest_neighbour_accuracy, nearest_neighbour_predict,
                                    template_accuracy, template_predict)

# class 0: (1, 0) and (0, 1) → template (0.5, 0.5), at 45°; class 1: (3, 1) → template (3, 1), at 18°
TRAIN_X = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
TRAIN_Y = np.array([0, 0, 1])


def test_template_and_nearest_neighbour_by_hand():
    # (1, 0.05): cosine 0.74 with class 0's template, 0.96 with class 1's → template says 1;
    # its nearest training image is (1, 0) at distance 0.05 → 1-NN says 0
    # (0.2, 0.9), at 77°: class 0's template (45°) is nearer in angle than class 1's (18°); nearest image (0, 1)
    test_x = np.array([[1.0, 0.05], [0.2, 0.9], [2.9, 1.2]])
    np.testing.assert_array_equal(template_predict(TRAIN_X, TRAIN_Y, test_x), [1, 0, 1])
    np.testing.assert_array_equal(nearest_neighbour_predict(TRAIN_X, TRAIN_Y, test_x), [0, 0, 1])
    truth = np.array([0, 0, 1])
    assert template_accuracy(TRAIN_X, TRAIN_Y, test_x, truth) == pytest.approx(200 / 3)
    assert nearest_neighbour_accuracy(TRAIN_X, TRAIN_Y, test_x, truth) == 100.0


def test_template_uses_the_direction_not_the_size():
    # a test image 10× brighter than class 0's template but in its direction is class 0
    assert template_predict(TRAIN_X, TRAIN_Y, np.array([[5.0, 5.0]]))[0] == 0
    # 1-NN looks at distances: the same bright image is closest to (3, 1)
    assert nearest_neighbour_predict(TRAIN_X, TRAIN_Y, np.array([[5.0, 5.0]]))[0] == 1


def test_images_are_flattened_and_labels_kept():
    """28×28-like images of labels 3 and 7 (not 0..C-1): predictions are those labels."""
    a = np.zeros((2, 2), np.uint8)
    a[0, 0] = 255
    b = np.zeros((2, 2), np.uint8)
    b[1, 1] = 255
    train = np.stack([a, b])
    labels = np.array([7, 3])
    np.testing.assert_array_equal(template_predict(train, labels, np.stack([b, a])), [3, 7])
    np.testing.assert_array_equal(nearest_neighbour_predict(train, labels, np.stack([b, a])), [3, 7])


def test_baselines_per_seed_use_each_seeds_prefix():
    train = np.stack([TRAIN_X, TRAIN_X[::-1]])  # seed 1: (3, 1) first
    labels = np.stack([TRAIN_Y, TRAIN_Y[::-1]])
    test_x = np.stack([[[1.0, 0.05]], [[1.0, 0.05]]])
    test_y = np.array([[0], [0]])
    out = baselines_per_seed(train, labels, test_x, test_y)
    np.testing.assert_array_equal(out["baseline_template_accuracy"], [0.0, 0.0])
    np.testing.assert_array_equal(out["baseline_1nn_accuracy"], [100.0, 100.0])
    # the first 2 images: seed 0 has only class 0 (right either way); seed 1 has (3, 1) and (0, 1):
    # (1, 0.05) is 1.38 from (0, 1) and 2.21 from (3, 1) → 1-NN says 0 (right), the templates' cosines are
    # 0.96 (class 1) and 0.05 (class 0) → template says 1 (wrong)
    first2 = baselines_per_seed(train, labels, test_x, test_y, n_train=2)
    np.testing.assert_array_equal(first2["baseline_template_accuracy"], [100.0, 0.0])
    np.testing.assert_array_equal(first2["baseline_1nn_accuracy"], [100.0, 100.0])


def test_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="training and test images"):
        template_accuracy(TRAIN_X[:0], TRAIN_Y[:0], TRAIN_X, TRAIN_Y)
