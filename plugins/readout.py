r"""Readouts shared by experiments: the segment vote of a network, and trivial
non-spiking baselines on the exact images a network saw (NumPy, on the host).

* **segment vote** (:func:`segment_predict`, JAX, traced inside the experiments'
  programs): the ``n_exc`` excitatory neurons are split into ``n_classes`` equal
  consecutive segments; the prediction is :math:`\arg\max_c \sum_{i \in c} k_i`
  with :math:`k_i` the spikes of neuron :math:`i` during the presentation.

Every supervised experiment reports, per seed, what a classifier that needs no
training at all gets on the same training and test images as that seed's
network, so a spiking result can be read against it:

* **class-mean template, cosine** (:func:`template_accuracy`): the template of class
  :math:`c` is the mean training image :math:`m_c = \frac{1}{n_c}\sum_{y_n = c} x_n`;
  a test image :math:`x` gets :math:`\arg\max_c \cos(x, m_c) = \arg\max_c
  \frac{x\cdot m_c}{\lVert x\rVert\,\lVert m_c\rVert}`.
* **one nearest neighbour on pixels** (:func:`nearest_neighbour_accuracy`): the label
  of :math:`\arg\min_n \lVert x - x_n\rVert_2`.

(``conv-mnist`` adds the linear readout of its own features, the conv pipeline's softmax
readout, as ``baseline_linear_readout_accuracy``.)

Ties go to the first class (the lowest label among those present in training) or
the first training image (NumPy ``argmax`` / ``argmin``). Accuracies are in percent.
Pure functions of their arrays: no randomness, no state.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, Shaped

__all__ = [
    "BASELINE_LABELS",
    "baselines_per_seed",
    "nearest_neighbour_accuracy",
    "nearest_neighbour_predict",
    "segment_predict",
    "template_accuracy",
    "template_predict",
]

#: Metric name → legend label of the baselines (figures and summary tables share them).
BASELINE_LABELS = {
    "baseline_template_accuracy": "class-mean template (cosine), same images",
    "baseline_1nn_accuracy": "1-NN on pixels, same images",
}


def segment_predict(counts: Int[Array, "*batch n_exc"], n_classes: int, tie_rule: str) -> Int[Array, "*batch"]:
    """Segment with the most spikes; ``-1`` for ties or silence under ``"strict"``.

    Args:
        counts: ``int[..., n_exc]`` spikes per excitatory neuron; ``n_exc`` a multiple of
            ``n_classes`` (segment ``c`` is neurons ``c·n_exc/n_classes … (c+1)·n_exc/n_classes − 1``).
        n_classes: number of segments (classes).
        tie_rule: ``"thesis"`` — the lowest tied segment wins (a silent network votes 0);
            ``"strict"`` — a tie or a silent network is ``-1`` (counted wrong).
    """
    seg = counts.reshape(*counts.shape[:-1], n_classes, -1).sum(-1)
    best = jnp.argmax(seg, axis=-1)
    if tie_rule == "thesis":
        return best
    top = jnp.max(seg, axis=-1, keepdims=True)
    unique = (jnp.sum(seg == top, axis=-1) == 1) & (top[..., 0] > 0)
    return jnp.where(unique, best, -1)


def _flat(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(x.shape[0], -1)


def _check(train_x, train_y, test_x, test_y):
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError(f"baselines need training and test images, got {len(train_x)} and {len(test_x)}")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError("baselines: as many labels as images are needed")


def template_predict(train_x: Shaped[np.ndarray, "n ..."], train_y: Int[np.ndarray, " n"],
                     test_x: Shaped[np.ndarray, "t ..."]) -> Int[np.ndarray, " t"]:
    """Label of the class-mean template with the largest cosine similarity to each test image.

    Only classes present in ``train_y`` can be predicted. A blank test image (or template)
    has cosine 0 with everything.
    """
    tx, vx = _flat(train_x), _flat(test_x)
    labels = np.unique(np.asarray(train_y))
    templates = np.stack([tx[np.asarray(train_y) == c].mean(axis=0) for c in labels])
    t_norm = np.linalg.norm(templates, axis=1)
    v_norm = np.linalg.norm(vx, axis=1)
    cos = (vx @ templates.T) / np.maximum(v_norm[:, None] * t_norm[None, :], np.finfo(np.float64).tiny)
    return labels[np.argmax(cos, axis=1)]


def template_accuracy(train_x: Shaped[np.ndarray, "n ..."], train_y: Int[np.ndarray, " n"],
                      test_x: Shaped[np.ndarray, "t ..."], test_y: Int[np.ndarray, " t"]) -> float:
    """Test accuracy (%) of the class-mean cosine template built from ``(train_x, train_y)``."""
    _check(train_x, train_y, test_x, test_y)
    return float(100.0 * np.mean(template_predict(train_x, train_y, test_x) == np.asarray(test_y)))


def nearest_neighbour_predict(train_x: Shaped[np.ndarray, "n ..."], train_y: Int[np.ndarray, " n"],
                              test_x: Shaped[np.ndarray, "t ..."]) -> Int[np.ndarray, " t"]:
    """Label of the nearest training image (Euclidean distance on the pixels) of each test image."""
    tx, vx = _flat(train_x), _flat(test_x)
    sq = np.sum(tx * tx, axis=1)
    nearest = np.empty(len(vx), np.int64)
    chunk = max(1, 2**24 // max(len(tx), 1))  # bounded memory: ≤ 2**24 distances (128 MiB) at a time
    for lo in range(0, len(vx), chunk):
        # ‖v − t‖² = ‖v‖² − 2 v·t + ‖t‖²; ‖v‖² is the same for every candidate of one test image
        nearest[lo:lo + chunk] = np.argmin(sq[None, :] - 2.0 * (vx[lo:lo + chunk] @ tx.T), axis=1)
    return np.asarray(train_y)[nearest]


def nearest_neighbour_accuracy(train_x: Shaped[np.ndarray, "n ..."], train_y: Int[np.ndarray, " n"],
                               test_x: Shaped[np.ndarray, "t ..."], test_y: Int[np.ndarray, " t"]) -> float:
    """Test accuracy (%) of one-nearest-neighbour on the pixels of ``train_x``."""
    _check(train_x, train_y, test_x, test_y)
    return float(100.0 * np.mean(nearest_neighbour_predict(train_x, train_y, test_x) == np.asarray(test_y)))


def baselines_per_seed(train_x: Shaped[np.ndarray, "s n ..."], train_y: Int[np.ndarray, "s n"],
                       test_x: Shaped[np.ndarray, "s t ..."], test_y: Int[np.ndarray, "s t"],
                       n_train: int | Sequence[int] | None = None) -> dict[str, Float[np.ndarray, " s"]]:
    """``{"baseline_template_accuracy": [S], "baseline_1nn_accuracy": [S]}`` (%), one value per seed.

    Seed ``s`` uses ``train_x[s, :n_train[s]]`` (all of them when ``n_train`` is ``None``;
    an int applies to every seed) and all of ``test_x[s]``.
    """
    n_seeds = len(train_x)
    if n_train is None:
        n_train = [np.asarray(train_x[s]).shape[0] for s in range(n_seeds)]
    elif np.ndim(n_train) == 0:
        n_train = [int(n_train)] * n_seeds
    out = {"baseline_template_accuracy": np.empty(n_seeds), "baseline_1nn_accuracy": np.empty(n_seeds)}
    for s in range(n_seeds):
        k = int(n_train[s])
        args = (train_x[s][:k], train_y[s][:k], test_x[s], test_y[s])
        out["baseline_template_accuracy"][s] = template_accuracy(*args)
        out["baseline_1nn_accuracy"][s] = nearest_neighbour_accuracy(*args)
    return out
