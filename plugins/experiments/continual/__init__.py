"""Experiment ``continual``: the thesis' Method 1 — learning a second task without forgetting the first.

Protocol (reference-parameters §1.5–1.9), per seed and for each *arm* (the chosen ``method`` and,
with ``compare_baseline``, the baseline on the same seeds):

1. **Task 1**: the conv network (``radius1`` / ``radius2``) learns task 1 layer-wise (``epochs1``,
   ``epochs2`` STDP epochs, ``epochs3`` R-STDP epochs of the decision layer), as ``conv-mnist``;
   its task-1 test accuracy is recorded.
2. **Method preparation** (after task 1): ``freeze-largest`` marks the decision-layer weights
   above their ``freeze_percentile``-th percentile; ``langevin-ranges`` keeps training on task 1
   for ``langevin_epochs`` epochs with Gaussian noise (σ = ``langevin_sigma``) added to all
   decision weights after every reward/punish update (rates fixed: those task 1 ended with, or
   with ``langevin_epoch0_adaptive_int`` > 0 those of one noise-free R-STDP epoch before the
   noisy ones that adapts them with that ``adaptive_int``, the thesis' epoch 0 at 0.5), feeds the weights of every
   ``langevin_every``-th image (after the update, before the noise) to a streaming per-weight
   quantile estimator (:mod:`snnjax.quantiles`, P², bounded memory) and takes the
   ``langevin_low`` / ``langevin_high`` quantiles as each weight's range. With
   ``langevin_stop`` > 0 a seed's noisy epochs end early, at the first epoch after which its
   task-1 test accuracy is below ``langevin_stop`` % (the thesis: 80); that epoch's snapshots
   are dropped, except when it is the first. A noisy epoch runs in parts of about
   ``langevin_chunk_images`` images (default 2,000; 0: whole epochs), each a checkpoint and a
   progress step; the cut changes no result. ``freeze_layers`` / ``langevin_layers`` (default
   ``decision``) choose the layers: a conv layer gets its own mask, or its own noisy STDP epochs
   on the task-1 images (:func:`_layer_langevin`), and its transform in its task-2 STDP epochs.
3. **Task 2** on the *same* outputs (domain-incremental: task-2 class ``i`` → output ``i``):
   with ``retrain_features`` the STDP layers continue learning on task 2 (``task2_epochs1``,
   ``task2_epochs2``; their learning rates carry over, as in the thesis' code), then the decision
   layer learns for ``task2_epochs3`` R-STDP epochs (rates reset, ``task2_adaptive_int``) under
   the method's transform (:mod:`snnjax_plugins.continual_transforms`), with the test accuracy on task 2 and
   on task 1 after every epoch.

Methods: ``baseline`` (nothing), ``inhibition`` (the lateral-inhibition radii; its baseline arm
uses ``baseline_radius1`` / ``baseline_radius2``, 0/0 by default, the thesis' baseline),
``freeze-largest``, ``langevin-ranges``, ``noise-lr`` (noisy decision-layer learning rate in both
tasks), and any registered regularizer, by name or as a ``[[method]]`` table with its parameters,
chained after R-STDP on the decision layer in task 2 (docs/plugins.md). Every other arm's baseline
uses the method arm's radii. ``method`` may list several of
the last three (``--set method=freeze-largest,langevin-ranges``) and ``langevin_low`` /
``langevin_high`` several quantile pairs (``0.25,0.1`` / ``0.75,0.9``: Q1/Q3 and D10/D90): one arm
each, all on the same seeds, sharing one baseline arm, the task-1 training, the task-2 feature
training and one Langevin trajectory (:func:`method_arms`). With one method arm the metrics
have the names below; with several, each arm's names carry its label (``freeze-largest:forgetting``).

Task sequences: ``split-mnist`` (embedded MNIST subset, always offline: digits 0–4, then 5–9,
on 5 shared outputs), ``mnist-emnist-letters`` (tfds ``mnist`` digits, then ``emnist/letters``
A–J, on 10 outputs; ``emnist_transpose`` chooses the orientation) and ``custom``
(``task1_dataset`` / ``task1_classes``, ``task2_dataset`` / ``task2_classes``: any two loadable
datasets). The ``task*_dataset`` keys also override the datasets of the named sequences.

Pixel baselines (:func:`pixel_baselines`): class-mean template and 1-NN on the same images.

Metrics: ``task1_after_task1``; curves ``task2_accuracy`` and ``task1_accuracy`` over the task-2
epochs; ``forgetting`` (task-1 accuracy after task 1 minus after task 2, points); the same with a
``baseline_`` prefix; ``forgetting_reduction`` = baseline forgetting / method forgetting on the
same seed (the thesis' "1.7×").

Checkpoints: every training stage (task-1 features, decision layer, Langevin ranges, task-2 features,
task-2 decision layer) is a phase of the run's loop (``ctx.loop.phase``, one chunk per epoch), so every
finished epoch is kept in the run's checkpoint and ``snnjax run --resume OUT`` continues an interrupted
run with the same results.
"""

from __future__ import annotations

from snnjax.experiment import Experiment

from .config import DEFAULTS, THESIS, method_arms, metric_prefix, tasks, validate
from .data import pixel_baselines
from .metrics import arm_metrics
from .run import run


def continual() -> Experiment:
    """Thesis Method 1: task 1 then task 2 on shared outputs; forgetting with and without a method."""
    return Experiment(name="continual", description=continual.__doc__.splitlines()[0], defaults=DEFAULTS,
                      run=run, validate=validate, thesis=THESIS)


__all__ = ["DEFAULTS", "THESIS", "arm_metrics", "continual", "method_arms", "metric_prefix", "pixel_baselines",
           "run", "tasks", "validate"]
