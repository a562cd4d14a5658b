"""Experiment ``continual``: the thesis' Method 1 — learning a second task without forgetting the first.

Protocol (reference-parameters §1.5–1.9), per seed and for each *arm* (the chosen ``method`` and,
with ``compare_baseline``, the baseline on the same seeds):

1. **Task 1**: the conv network (``radius1`` / ``radius2``) learns task 1 layer-wise (``epochs1``,
   ``epochs2`` STDP epochs, ``epochs3`` R-STDP epochs of the decision layer), as ``conv-mnist``;
   its task-1 test accuracy is recorded.
2. **Method preparation** (after task 1): ``freeze-largest`` marks the decision-layer weights
   above their ``freeze_percentile``-th percentile; ``langevin-ranges`` keeps training on task 1
   for ``langevin_epochs`` epochs with Gaussian noise (σ = ``langevin_sigma``) added to all
   decision weights after every reward/punish update (rates fixed), feeds the weights of every
   ``langevin_every``-th image (after the update, before the noise) to a streaming per-weight
   quantile estimator (:mod:`snnjax.quantiles`, P², bounded memory) and takes the
   ``langevin_low`` / ``langevin_high`` quantiles as each weight's range. With
   ``langevin_stop`` > 0 a seed's noisy epochs end early, at the first epoch after which its
   task-1 test accuracy is below ``langevin_stop`` % (the thesis: 80); that epoch's snapshots
   are dropped, except when it is the first. ``freeze_layers`` / ``langevin_layers`` (default
   ``decision``) choose the layers: a conv layer gets its own mask, or its own noisy STDP epochs
   on the task-1 images (:func:`_layer_langevin`), and its transform in its task-2 STDP epochs.
3. **Task 2** on the *same* outputs (domain-incremental: task-2 class ``i`` → output ``i``):
   with ``retrain_features`` the STDP layers continue learning on task 2 (``task2_epochs1``,
   ``task2_epochs2``; their learning rates carry over, as in the thesis' code), then the decision
   layer learns for ``task2_epochs3`` R-STDP epochs (rates reset, ``task2_adaptive_int``) under
   the method's transform (:mod:`snnjax_plugins.continual`), with the test accuracy on task 2 and
   on task 1 after every epoch.

Methods: ``baseline`` (nothing), ``inhibition`` (the lateral-inhibition radii; its baseline arm
uses ``baseline_radius1`` / ``baseline_radius2``, 0/0 by default, the thesis' baseline),
``freeze-largest``, ``langevin-ranges``, ``noise-lr`` (noisy decision-layer learning rate in both
tasks). Every other arm's baseline uses the method arm's radii. ``method`` may list several of
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

Checkpoints: every finished phase (features, decision layer, Langevin ranges) and every finished
decision-layer epoch is kept in the run's checkpoint (:class:`snnjax.checkpoint.PhaseStore`), so
``snnjax run --resume OUT`` continues an interrupted run with the same results.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.checkpoint import PhaseStore
from snnjax.errors import ConfigError, DataError
from snnjax.experiment import Experiment, RunContext, RunResult
from snnjax.plasticity import chain, clip_per_weight, freeze
from snnjax.quantiles import check_probability, quantiles_estimate, quantiles_init, quantiles_update

from .. import continual as methods
from .. import readout
from ..conv import networks as N
from ..conv import pipeline as P
from ..conv.stdp import ConvActivity

#: the layers a method may act on (``freeze_layers``, ``langevin_layers``)
LAYERS = ("conv1", "conv2", "decision")
CONV_LAYERS = LAYERS[:2]
METHODS = ("baseline", "inhibition", "freeze-largest", "langevin-ranges", "noise-lr")
SEQUENCES = {
    "split-mnist": (("mnist-embedded", list(range(5))), ("mnist-embedded", list(range(5, 10))), 5),
    "mnist-emnist-letters": (("mnist", list(range(10))), ("emnist/letters", list(range(1, 11))), 10),
    "custom": (None, None, 0),
}

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "sequence": "split-mnist",
    "task1_dataset": "",
    "task1_classes": [-1],
    "task2_dataset": "",
    "task2_classes": [-1],
    "emnist_transpose": True,
    "data_dir": "",
    "n_outputs": 0,
    "n_train": 0,
    "n_test": 0,
    "n_train_stdp": 0,
    "epochs1": 2,
    "epochs2": 4,
    "epochs3": 50,
    "retrain_features": True,
    "task2_epochs1": 2,
    "task2_epochs2": 4,
    "task2_epochs3": 100,
    "task2_adaptive_int": 0.5,
    "method": ["baseline"],
    "compare_baseline": True,
    "baseline_radius1": 0,
    "baseline_radius2": 0,
    "freeze_percentile": 90.0,
    "freeze_layers": ["decision"],
    "langevin_epochs": 24,
    "langevin_sigma": 4e-4,
    "langevin_every": 100,
    "langevin_stop": 0.0,
    "langevin_low": [0.1],
    "langevin_high": [0.9],
    "langevin_layers": ["decision"],
    "noise_lr_std": 0.5,
    **P.NETWORK_DEFAULTS,
}

THESIS = {
    "task1_after_task1": "R1/R2 0/0 → 90.8, 3/1 → 93.6, 5/1 → 94.8, 5/2 → 94.8 % (digits, thesis)",
    "final_task2": "letters: 0/0 → 78.4, 3/1 → 87.3, 5/2 → 88.9; Langevin Q1/Q3 → 66.3, D10/D90 → 78.3 % (thesis)",
    "final_task1": "digits after letters: 0/0 → 48.1, 3/1 → 73.3, 5/2 → 78.6; Q1/Q3 → 78.7, D10/D90 → 82.2 % (thesis)",
    "forgetting_reduction": "≈1.7× (Langevin D10/D90 vs the 3/1 baseline, thesis)",
}


# ------------------------------------------------------------------------------------------ config


def _given(classes) -> list[int] | None:
    values = [int(c) for c in classes]
    return None if values in ([], [-1]) else values


def tasks(cfg: Mapping[str, Any]) -> tuple[tuple[str, list[int] | None], tuple[str, list[int] | None], int]:
    """``((dataset1, classes1), (dataset2, classes2), n_outputs)`` of the config (classes ``None`` = all)."""
    t1, t2, n_out = SEQUENCES[cfg["sequence"]]
    out = []
    for i, default in ((1, t1), (2, t2)):
        name = cfg[f"task{i}_dataset"] or (default[0] if default else "")
        classes = _given(cfg[f"task{i}_classes"])
        if classes is None and default is not None:
            classes = default[1]
        out.append((name, classes))
    return out[0], out[1], int(cfg["n_outputs"] or n_out or 10)


def _check_choices(cfg: Mapping[str, Any], key: str, allowed: tuple[str, ...], noun: str) -> list[str]:
    """``cfg[key]`` as a list of distinct names from ``allowed``, or :class:`ConfigError` (empty, unknown, repeated)."""
    values = list(cfg[key])
    if not values:
        raise ConfigError(f"{key} is empty; choose one or more of {', '.join(allowed)}")
    for v in values:
        if v not in allowed:
            raise ConfigError(f"unknown {noun} {v!r} in {key}; choose one or more of {', '.join(allowed)}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{key}={values} names a {noun} twice")
    return values


def validate(cfg: Mapping[str, Any]) -> None:
    """Check the config before any data is read or anything is compiled."""
    P.validate_network(cfg)
    if cfg["network"] != "mozafari":
        raise ConfigError("continual needs a network with a decision layer: network = 'mozafari'")
    chosen = _check_choices(cfg, "method", METHODS, "method")
    if len(chosen) > 1 and ("baseline" in chosen or "inhibition" in chosen):
        raise ConfigError(f"method={chosen}: 'baseline' and 'inhibition' run alone (several methods already share "
                          f"one baseline arm through compare_baseline; 'inhibition' compares radii)")
    if cfg["sequence"] not in SEQUENCES:
        raise ConfigError(f"unknown sequence {cfg['sequence']!r}; choose one of {', '.join(SEQUENCES)}")
    if cfg["sequence"] == "custom" and not (cfg["task1_dataset"] and cfg["task2_dataset"]):
        raise ConfigError("sequence = 'custom' needs task1_dataset and task2_dataset (any two loadable datasets)")
    for key in ("epochs3", "task2_epochs3", "langevin_every"):
        if not P._is_int(cfg[key]) or cfg[key] < 1:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]!r}")
    for key in ("epochs1", "epochs2", "task2_epochs1", "task2_epochs2", "langevin_epochs", "n_train", "n_test",
                "n_train_stdp", "n_outputs", "baseline_radius1", "baseline_radius2"):
        if not P._is_int(cfg[key]) or cfg[key] < 0:
            raise ConfigError(f"{key} must be a non-negative integer, got {cfg[key]!r}")
    if not 0.0 <= cfg["langevin_stop"] < 100.0:
        raise ConfigError(f"langevin_stop is a task-1 test accuracy in % in [0, 100) below which the noisy epochs "
                          f"stop (0: never; the thesis used 80), got {cfg['langevin_stop']!r}")
    if "langevin-ranges" in chosen and cfg["langevin_epochs"] < 1:
        raise ConfigError("method = 'langevin-ranges' needs langevin_epochs >= 1 (the noisy epochs that give the ranges)")
    lows, highs = list(cfg["langevin_low"]), list(cfg["langevin_high"])
    if not lows or len(lows) != len(highs):
        raise ConfigError(f"langevin_low {lows} and langevin_high {highs} must list the same number (>= 1) of "
                          f"quantiles: one range [low, high] per pair, e.g. 0.25,0.1 and 0.75,0.9")
    for low, high in zip(lows, highs):
        low = check_probability(low, "langevin_low (a quantile)")
        high = check_probability(high, "langevin_high (a quantile)")
        if not low < high:
            raise ConfigError(f"Langevin quantiles need langevin_low < langevin_high, got {low} and {high}")
    if len(set(zip(lows, highs))) != len(lows):
        raise ConfigError(f"langevin_low/langevin_high repeat a pair: {list(zip(lows, highs))}")
    methods.check_percentile(cfg["freeze_percentile"])
    for key, method in (("freeze_layers", "freeze-largest"), ("langevin_layers", "langevin-ranges")):
        layers = _check_choices(cfg, key, LAYERS, "layer")
        if method not in chosen:
            continue
        for i, layer in enumerate(CONV_LAYERS):
            if layer in layers and not (cfg["retrain_features"] and cfg[f"task2_epochs{i + 1}"] > 0):
                raise ConfigError(f"{key} names {layer}, but {layer} does not learn in task 2 (retrain_features = "
                                  f"{cfg['retrain_features']}, task2_epochs{i + 1} = {cfg[f'task2_epochs{i + 1}']}), so "
                                  f"{method} would change nothing there; drop {layer} from {key} or let it learn")
    for key in ("langevin_sigma", "noise_lr_std"):
        if not cfg[key] >= 0:
            raise ConfigError(f"{key} must be >= 0, got {cfg[key]!r}")
    if not cfg["task2_adaptive_int"] > 0:
        raise ConfigError(f"task2_adaptive_int must be > 0, got {cfg['task2_adaptive_int']!r}")
    (_, c1), (_, c2), n_out = tasks(cfg)
    maps = N.mozafari2019().decision.out_maps
    if n_out > maps or maps % n_out:
        raise ConfigError(f"n_outputs={n_out} must divide the decision layer's {maps} maps (e.g. 2, 5, 10)")
    for i, classes in ((1, c1), (2, c2)):
        if classes is not None:
            if len(set(classes)) != len(classes):
                raise ConfigError(f"task{i}_classes={classes} repeats a class")
            if len(classes) > n_out:
                raise ConfigError(f"task {i} has {len(classes)} classes {classes}, more than the {n_out} shared outputs "
                                  f"(n_outputs); drop classes or raise n_outputs")


# ------------------------------------------------------------------------------------------ data


def load_task(name: str, classes: list[int] | None, split: str, limit: int, n_out: int, cfg, registry):
    """``(images uint8 [N, 28, 28], outputs int32 [N], classes)``: labels mapped to ``0..len(classes)-1``."""
    from snnjax import data

    params = {"transpose": bool(cfg["emnist_transpose"])} if name.startswith("emnist") else None
    ds = data.load(name, split, data_dir=cfg["data_dir"] or None, registry=registry, source_params=params)
    if ds.images.shape[1:] != (28, 28):
        raise ConfigError(f"dataset {name!r} has images of shape {ds.images.shape[1:]}; the conv network needs 28×28")
    if classes is None:
        classes = sorted(np.unique(ds.labels).tolist())
        if len(classes) > n_out:
            raise ConfigError(f"dataset {name!r} has {len(classes)} classes, more than the {n_out} shared outputs; "
                              f"choose at most {n_out} with task*_classes or raise n_outputs")
    keep = np.isin(ds.labels, classes)
    images, labels = ds.images[keep], ds.labels[keep]
    if limit:
        images, labels = images[:limit], labels[:limit]
    if labels.size == 0:
        raise DataError(f"dataset {name!r} split {split!r} has no images of classes {classes}")
    lut = {c: i for i, c in enumerate(classes)}
    return images, np.asarray([lut[int(v)] for v in labels], np.int32), list(classes)


# ------------------------------------------------------------------------------------------ the arms


def langevin_probabilities(cfg: Mapping[str, Any]) -> tuple[float, ...]:
    """Every quantile the Langevin arms need (``langevin_low`` and ``langevin_high``), sorted, once each."""
    return tuple(sorted({float(p) for p in [*cfg["langevin_low"], *cfg["langevin_high"]]}))


def _langevin_ranges(pipe: P.ConvPipeline, cfg, keys, w, st, step, bounds, program, tag, lat_train, y_train, evaluate,
                     progress=None):
    """Noisy task-1 epochs of one layer, recording its weights.

    ``step(w, st, latency, label) -> (w, st, decision)`` trains the layer on one image
    (``decision = -1``: no update, so no noise); after it ``σ·N(0, 1)`` is added to every weight of
    the layer, clamped to ``bounds``. The weights after the update, before the noise, of every
    ``langevin_every``-th image feed the streaming quantile estimator. ``evaluate(w) -> (S,)``
    gives the task-1 test accuracy of the network with the layer's weights ``w`` (per seed).

    Returns ``(quantiles [n_probs, S, *w.shape], task-1 accuracy per epoch [S, langevin_epochs])``,
    the quantiles in the order of :func:`langevin_probabilities`: every Langevin arm of the run (e.g.
    Q1/Q3 and D10/D90) reads its range from the same noisy trajectory. With ``langevin_stop`` a
    seed whose accuracy falls below it keeps the state of the epoch before (its first epoch is
    always kept) and takes no further epochs; its later accuracies are NaN (so the epochs it kept
    are the non-NaN ones). ``progress(epochs_done, epochs)`` is called after every epoch.
    """
    every, sigma, stop = int(cfg["langevin_every"]), float(cfg["langevin_sigma"]), float(cfg["langevin_stop"])
    probs = langevin_probabilities(cfg)
    noise = methods.langevin_noise(jax.random.PRNGKey(0), sigma, *bounds)  # the key lives in the carried state
    shared = lat_train.ndim == 4
    n = int(lat_train.shape[0 if shared else 1])
    chunks = n // every
    if chunks < 1:
        raise ConfigError(f"langevin_every={every} exceeds the {n} task-1 training images of the noisy epochs")

    def one(key, nkey, w, st, qs, cache, labels):
        order = jax.random.permutation(key, n)[: chunks * every].reshape(chunks, every)

        def inner(carry, idx):
            w, st, nk, _ = carry
            w_mid, st, decision = step(w, st, cache[idx], labels[idx])
            w, nk = noise.update(w_mid, nk, ConvActivity(None, None, None, decision))
            return (w, st, nk, w_mid), None

        def outer(carry, idxs):
            w, st, nk, qs = carry
            (w, st, nk, w_mid), _ = jax.lax.scan(inner, (w, st, nk, w), idxs)
            return (w, st, nk, quantiles_update(qs, w_mid, probs)), None

        (w, st, nk, qs), _ = jax.lax.scan(outer, (w, st, nkey, qs), order)
        return nk, w, st, qs

    fn = jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None if shared else 0, None))
    S = keys.shape[0]
    carry = (P.epoch_keys(keys, tag, 0), w, st, jax.vmap(lambda w: quantiles_init(w.shape, probs))(w))
    acc = np.full((S, cfg["langevin_epochs"]), np.nan)
    active = np.ones(S, bool)
    for e in range(cfg["langevin_epochs"]):
        new = pipe.run_program(f"langevin-{program}-{sigma}-{every}-{probs}", fn, P.epoch_keys(keys, tag + 1, e), *carry,
                               jnp.asarray(lat_train), jnp.asarray(y_train, jnp.int32))
        got = np.asarray(evaluate(new[1]))
        keep = active & ((got >= stop) | (e == 0))
        acc[keep, e] = got[keep]
        carry = jax.tree.map(lambda a, b: jnp.where(keep.reshape((S,) + (1,) * (a.ndim - 1)), a, b), new, carry)
        active = keep
        if progress is not None:
            progress(e + 1, cfg["langevin_epochs"])
        if not active.any():
            break
    estimates = jax.vmap(lambda q: jnp.stack(quantiles_estimate(q, probs)), out_axes=1)(carry[3])
    return estimates, acc


def _layer_langevin(pipe: P.ConvPipeline, cfg, keys, layer: str, state: P.NetState, w3, st3, lat_t1, lat2_t1, n1,
                    n_stdp1, y1, yt1, progress=None):
    """:func:`_langevin_ranges` of one layer (``conv1``, ``conv2`` or ``decision``) after task 1.

    ``decision``: R-STDP with the rates fixed at their post-task-1 values on the task-1 features,
    noise after every reward/punish update, clamped to [0.2, 0.8] (the thesis). ``conv1`` /
    ``conv2``: STDP (its state carried over from task 1) on the task-1 STDP images, noise after
    every image, clamped to [lb, ub] of the STDP rule; the other layers keep their task-1 weights,
    and the stop rule's accuracy is the whole network's with the noisy layer (features recomputed).
    """
    if layer == "decision":
        step = pipe.decision_step(pipe.rstdp_rule(adaptive=False))  # rates stay at their post-task-1 values
        return _langevin_ranges(pipe, cfg, keys, w3, st3, step, (0.2, 0.8), "decision", 40, lat2_t1[:, :n1], y1,
                                lambda w: pipe.evaluate(w, lat2_t1[:, n1:], yt1).accuracy, progress)
    index = CONV_LAYERS.index(layer)
    stdp = pipe.layer_step(index, pipe.stdp)
    step = lambda w, st, lat, label: (*stdp(w, st, lat), jnp.int32(0))  # noqa: E731  (every image updates)
    bounds = (pipe.stdp_params.get("lb", 0.0), pipe.stdp_params.get("ub", 1.0))
    train, test = lat_t1[:n_stdp1], lat_t1[n1:]
    if index == 0:
        evaluate = lambda w: pipe.evaluate(w3, pipe.features(w, state.w2, test), yt1).accuracy  # noqa: E731
        w, st = state.w1, state.st1
    else:
        train, test = pipe.propagate(0, state.w1, train), pipe.propagate(0, state.w1, test)
        evaluate = lambda w: pipe.evaluate(w3, pipe.propagate(1, w, test), yt1).accuracy  # noqa: E731
        w, st = state.w2, state.st2
    return _langevin_ranges(pipe, cfg, keys, w, st, step, bounds, layer, 42 + 2 * index, train,
                            np.zeros(len(train) if train.ndim == 4 else train.shape[1], np.int32), evaluate, progress)


def _train_features(pipe, keys, state, lat0_stdp, e1, e2, tag, times, rules=None):
    """``e1`` STDP epochs of layer 1, then ``e2`` of layer 2, from ``state``.

    ``rules`` maps a layer index (0, 1) to ``(name, make_rule, rule_args)``: that layer trains
    under ``make_rule(*rule_args)``, a chain of the pipeline's STDP rule and a transform (state
    ``(stdp state, ())``) instead of the plain STDP rule.
    """
    rules = rules or {}

    def epoch(index, e, w, st, cache):
        if index not in rules:
            return pipe.train_layer_epoch(index, P.epoch_keys(keys, tag + 1 + index, e), w, st, cache)
        name, make, args = rules[index]
        w, (st, _) = pipe.train_layer_epoch(index, P.epoch_keys(keys, tag + 1 + index, e), w, (st, ()), cache, name=name,
                                            make_rule=make, rule_args=args)
        return w, st

    for e in range(e1):
        (w1, st1), dt = P.timed(epoch, 0, e, state.w1, state.st1, lat0_stdp)
        state = state._replace(w1=w1, st1=st1)
        times["layer1"].append(round(dt, 3))
    if e2:
        lat1 = pipe.propagate(0, state.w1, lat0_stdp)
        for e in range(e2):
            (w2, st2), dt = P.timed(epoch, 1, e, state.w2, state.st2, lat1)
            state = state._replace(w2=w2, st2=st2)
            times["layer2"].append(round(dt, 3))
    return state


def _progress(store: PhaseStore, name: str, tree):
    """``(*tree, first epoch to run)``: the stored progress of an epoch loop, or ``tree`` and 0."""
    got = store.get(f"{name}@progress", (tree, np.int32(0)))
    if got is None:
        return (*tree, 0)
    return (*got[0], int(got[1]))


def _save_progress(store: PhaseStore, name: str, tree, epochs_done: int) -> None:
    store.put(f"{name}@progress", (tree, np.int32(epochs_done)))


def run_arm(arm: dict, cfg, keys, data, n_out, ctx, cache: dict, times, store: PhaseStore,
            partial_metrics: dict) -> dict[str, np.ndarray]:
    """Task 1, the method's preparation and task 2 for one arm; per-seed metrics.

    Every finished phase (and every decision-layer epoch) is kept in ``store``, the run's
    checkpoint: ``snnjax run --resume`` skips what is done.
    """
    (x1, y1, xt1, yt1), (x2, y2, xt2, yt2) = data
    method, (r1, r2) = arm["method"], arm["radii"]
    acfg = {**cfg, "radius1": r1, "radius2": r2}
    pipe = P.pipeline_from_config(acfg, n_out, len(y1))
    S = keys.shape[0]
    n1, n2 = len(y1), len(y2)
    n_stdp1 = min(cfg["n_train_stdp"] or n1, n1)
    n_stdp2 = min(cfg["n_train_stdp"] or n2, n2)
    lat_t1 = pipe.encode(np.concatenate([x1, xt1]))
    lat_t2 = pipe.encode(np.concatenate([x2, xt2]))
    noisy = method == "noise-lr"

    # ---- task 1 (shared by the arms with the same radii / decision rule)
    fkey = f"task1-features-R{r1}-{r2}"
    if fkey not in cache:
        template = pipe.init(keys)
        state = store.get(fkey, template)
        if state is None:
            state = _train_features(pipe, keys, template, lat_t1[:n_stdp1], cfg["epochs1"], cfg["epochs2"], 10, times)
            store.put(fkey, state)
        cache[fkey] = (state, pipe.features(state.w1, state.w2, lat_t1))
    state, lat2_t1 = cache[fkey]
    dkey = f"task1-decision-R{r1}-{r2}{'-noise-lr' if noisy else ''}"
    if dkey not in cache:
        if noisy:
            base, std = pipe.rstdp_rule(), float(cfg["noise_lr_std"])
            make, name = (lambda: chain(base, methods.noise_lr(jax.random.PRNGKey(0), std))), f"t1-noise-lr-{std}"
            st3 = (state.st3, P.epoch_keys(keys, 20, 0))
        else:
            make, name, st3 = None, "decision", state.st3
        w3 = state.w3
        done = store.get(dkey, (w3, state.st3, np.zeros(S)))
        if done is None:
            w3, st3, start = _progress(store, dkey, (w3, st3))
            for e in range(start, cfg["epochs3"]):
                (w3, st3, _), dt = P.timed(pipe.decision_epoch, P.epoch_keys(keys, 13, e), w3, st3, lat2_t1[:, :n1],
                                           y1, make_rule=make, name=name, rule_args=())
                times["decision"].append(round(dt, 3))
                _save_progress(store, dkey, (w3, st3), e + 1)
            rstdp_state = st3[0] if noisy else st3
            done = (w3, rstdp_state, np.asarray(pipe.evaluate(w3, lat2_t1[:, n1:], yt1).accuracy))
            store.put(dkey, done, drop=(f"{dkey}@progress",))
        cache[dkey] = done
    w3, st3_task1, acc_t1 = cache[dkey]
    out: dict[str, np.ndarray] = {"task1_after_task1": acc_t1}

    # ---- method preparation on task 1
    rstdp2 = pipe.rstdp_rule(adaptive_int=float(cfg["task2_adaptive_int"]), batch_size=n2)
    make, args, extra_state = (lambda: rstdp2), (), None  # the decision layer's task-2 rule
    conv_rules: dict[int, tuple] = {}  # layer index -> (program name, make_rule, rule_args) in task 2
    task1_weights = {"conv1": state.w1, "conv2": state.w2, "decision": w3}
    if method == "freeze-largest":
        pct = float(cfg["freeze_percentile"])
        masks = {}
        for layer in cfg["freeze_layers"]:
            masks[layer] = jax.vmap(lambda w: methods.largest_mask(w, pct))(task1_weights[layer])
            out[_layer_metric(layer, "frozen_fraction")] = 100.0 * np.asarray(jnp.mean(masks[layer].reshape(S, -1), axis=1))
        for index, layer in enumerate(CONV_LAYERS):
            if layer in masks:
                conv_rules[index] = (f"t2-freeze-{layer}", lambda m: chain(pipe.stdp, freeze(m)), (masks[layer],))
        if "decision" in masks:
            make, args, extra_state = (lambda m: chain(rstdp2, freeze(m))), (masks["decision"],), ()
    elif method == "langevin-ranges":
        probs = langevin_probabilities(cfg)
        for layer in cfg["langevin_layers"]:
            lkey = f"langevin-{dkey}" if layer == "decision" else f"langevin-{layer}-{dkey}"
            if lkey not in cache:
                w = task1_weights[layer]
                ranges = store.get(lkey, (jnp.stack([w] * len(probs)), np.zeros((S, cfg["langevin_epochs"]))))
                if ranges is None:
                    ranges = _layer_langevin(pipe, cfg, keys, layer, state, w3, st3_task1, lat_t1, lat2_t1, n1, n_stdp1,
                                             y1, yt1, lambda done, total: ctx.progress(done, total,
                                                                                       f"noisy task-1 epochs ({layer})"))
                    store.put(lkey, ranges)
                cache[lkey] = ranges
            estimates, lang_acc = cache[lkey]
            low, high = (estimates[probs.index(q)] for q in arm["quantiles"])
            out[_layer_metric(layer, "langevin_task1_accuracy")] = lang_acc
            out[_layer_metric(layer, "langevin_epochs_run")] = np.sum(~np.isnan(lang_acc), axis=1)
            out[_layer_metric(layer, "range_width")] = np.asarray(jnp.mean((high - low).reshape(S, -1), axis=1))
            if layer == "decision":
                w3 = jnp.clip(w3, low, high)
                make, args, extra_state = (lambda lo, hi: chain(rstdp2, clip_per_weight(lo, hi))), (low, high), ()
            else:
                index = CONV_LAYERS.index(layer)
                conv_rules[index] = (f"t2-ranges-{layer}", lambda lo, hi: chain(pipe.stdp, clip_per_weight(lo, hi)),
                                     (low, high))
    elif noisy:
        std = float(cfg["noise_lr_std"])
        make, args, extra_state = (lambda: chain(rstdp2, methods.noise_lr(jax.random.PRNGKey(0), std))), (), P.epoch_keys(keys, 21, 0)
    st3 = jax.vmap(rstdp2.init)(w3)
    if extra_state is not None:
        st3 = (st3, extra_state)

    # ---- task 2: features continue on task 2 (under the method where it names conv layers), then the
    # decision layer learns under the method
    tkey = f"task2-features-R{r1}-{r2}"  # without conv-layer transforms the STDP layers do not depend on the method
    if conv_rules:
        tkey += f"-{arm['label']}-{'+'.join(CONV_LAYERS[i] for i in sorted(conv_rules))}"
    got = cache.get(tkey)
    if got is None:
        feats = state
        if cfg["retrain_features"]:
            feats = store.get(tkey, state)
            if feats is None:
                begin = state
                if method == "langevin-ranges":  # the layers start inside their ranges (the rules' arguments)
                    for index, (_, _, (low, high)) in conv_rules.items():
                        begin = begin._replace(**{f"w{index + 1}": jnp.clip((state.w1, state.w2)[index], low, high)})
                feats = _train_features(pipe, keys, begin, lat_t2[:n_stdp2], cfg["task2_epochs1"], cfg["task2_epochs2"],
                                        30, times, conv_rules)
                store.put(tkey, feats)
        got = (feats, pipe.features(feats.w1, feats.w2, np.concatenate([lat_t2, lat_t1[n1:]])))
        if not conv_rules:  # shared by the other arms; an arm's own features are dropped after the arm
            cache[tkey] = got
    feats, lat2_all = got
    lat2_train2, lat2_test2, lat2_test1 = lat2_all[:, :n2], lat2_all[:, n2:n2 + len(yt2)], lat2_all[:, n2 + len(yt2):]
    E = cfg["task2_epochs3"]
    name = f"t2-{method}-{cfg['task2_adaptive_int']}-{cfg['noise_lr_std']}"
    pkey = f"arm{arm['index']}-task2-decision"
    w3, st3, acc2, acc1, start = _progress(store, pkey, (w3, st3, np.zeros((S, E)), np.zeros((S, E))))
    acc2, acc1 = np.array(acc2), np.array(acc1)
    for e in range(start, E):
        (w3, st3, _), dt = P.timed(pipe.decision_epoch, P.epoch_keys(keys, 33, e), w3, st3, lat2_train2, y2,
                                   make_rule=make, name=name, rule_args=args)
        times["decision"].append(round(dt, 3))
        acc2[:, e] = pipe.evaluate(w3, lat2_test2, yt2).accuracy
        acc1[:, e] = pipe.evaluate(w3, lat2_test1, yt1).accuracy
        ctx.partial = RunResult(metrics={**partial_metrics, f"arm{arm['index']}_task2_accuracy": acc2[:, :e + 1],
                                         f"arm{arm['index']}_task1_accuracy": acc1[:, :e + 1]})
        _save_progress(store, pkey, (w3, st3, acc2, acc1), e + 1)
        ctx.progress(arm["done"] + e + 1, arm["total"], "task-2 epochs")
    out.update(task2_accuracy=acc2, task1_accuracy=acc1, final_task2=acc2[:, -1], final_task1=acc1[:, -1],
               forgetting=acc_t1 - acc1[:, -1])
    if method == "freeze-largest":
        task2_weights = {"conv1": feats.w1, "conv2": feats.w2, "decision": w3}
        for layer, mask in masks.items():
            changed = jnp.where(mask, task2_weights[layer] != task1_weights[layer], False)
            out[_layer_metric(layer, "frozen_weights_changed")] = np.asarray(jnp.sum(changed.reshape(S, -1), axis=1))
    return out


def _layer_metric(layer: str, name: str) -> str:
    """A per-layer metric's name: plain for the decision layer (the thesis' methods), else ``<layer>_<name>``."""
    return name if layer == "decision" else f"{layer}_{name}"


def method_arms(cfg: Mapping[str, Any]) -> list[dict]:
    """The arms of a run, baseline first: one per method, one per Langevin quantile pair.

    Each arm is ``{"label", "method", "radii", "is_baseline", "index", "done", "total"}``, Langevin
    arms also ``"quantiles": (low, high)``. All arms run on the same seeds and share whatever
    does not depend on the method (task-1 training, the task-2 feature layers, the Langevin run).
    """
    radii = (cfg["radius1"], cfg["radius2"])
    pairs = list(zip(map(float, cfg["langevin_low"]), map(float, cfg["langevin_high"])))
    arms: list[dict] = []
    for method in cfg["method"]:
        if method == "langevin-ranges":
            for q in pairs:
                label = method if len(pairs) == 1 else f"{method} {q[0]:g}/{q[1]:g}"
                arms.append({"label": label, "method": method, "radii": radii, "quantiles": q})
        else:
            arms.append({"label": method, "method": method, "radii": radii})
    if cfg["compare_baseline"] and list(cfg["method"]) != ["baseline"]:
        inhibition = list(cfg["method"]) == ["inhibition"]
        base_radii = (cfg["baseline_radius1"], cfg["baseline_radius2"]) if inhibition else radii
        arms.insert(0, {"label": "baseline", "method": "baseline", "radii": base_radii})
    E = cfg["task2_epochs3"]
    for i, arm in enumerate(arms):
        arm.update(is_baseline=(i == 0 and arm["method"] == "baseline"), index=i, done=i * E, total=len(arms) * E)
    return arms


def metric_prefix(arm: dict, arms: list[dict]) -> str:
    """Prefix of an arm's metrics: none for a run with one method arm, else ``"<label>:"``; ``baseline_`` for the baseline."""
    methods_ = [a for a in arms if not a["is_baseline"]]
    if arm["is_baseline"]:
        return "" if not methods_ else "baseline_"
    return "" if len(methods_) == 1 else f"{arm['label']}:"


_BASELINE_KEYS = ("task1_after_task1", "task2_accuracy", "task1_accuracy", "final_task2", "final_task1", "forgetting")


def arm_metrics(arms: list[dict], results: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One metrics table for all arms (names: :func:`metric_prefix`), with each method's ``forgetting_reduction``.

    ``forgetting_reduction`` = baseline forgetting / method forgetting on the same seed, NaN
    where the method forgets nothing.
    """
    metrics: dict[str, np.ndarray] = {}
    base = results[0] if arms[0]["is_baseline"] else None
    for arm, res in zip(arms, results):
        pre = metric_prefix(arm, arms)
        keys = _BASELINE_KEYS if arm["is_baseline"] and pre else res
        metrics.update({f"{pre}{k}": res[k] for k in keys})
        if base is not None and not arm["is_baseline"]:
            with np.errstate(divide="ignore", invalid="ignore"):
                metrics[f"{pre}forgetting_reduction"] = np.where(res["forgetting"] > 0, base["forgetting"] / res["forgetting"],
                                                                 np.nan)
    return metrics


def run(ctx: RunContext) -> RunResult:
    cfg = ctx.config
    (d1, c1), (d2, c2), n_out = tasks(cfg)
    t0 = time.perf_counter()
    x1, y1, c1 = load_task(d1, c1, "train", cfg["n_train"], n_out, cfg, ctx.registry)
    xt1, yt1, _ = load_task(d1, c1, "test", cfg["n_test"], n_out, cfg, ctx.registry)
    x2, y2, c2 = load_task(d2, c2, "train", cfg["n_train"], n_out, cfg, ctx.registry)
    xt2, yt2, _ = load_task(d2, c2, "test", cfg["n_test"], n_out, cfg, ctx.registry)
    data = ((x1, y1, xt1, yt1), (x2, y2, xt2, yt2))
    arms = method_arms(cfg)
    E = cfg["task2_epochs3"]
    keys = ctx.seed_keys()
    times: dict[str, list] = {"layer1": [], "layer2": [], "decision": []}
    cache: dict = {}
    store = PhaseStore(ctx)
    results, partial_metrics = [], {}
    for arm in arms:
        results.append(run_arm(arm, cfg, keys, data, n_out, ctx, cache, times, store, partial_metrics))
        partial_metrics.update({f"arm{arm['index']}_{k}": v for k, v in results[-1].items()})
    metrics = arm_metrics(arms, results)
    metrics.update(pixel_baselines(data, ctx.n_seeds))
    x = list(range(1, E + 1))
    curves_x = {k: x for k, v in metrics.items() if np.ndim(v) == 2}
    for k in metrics:
        if k.endswith("langevin_task1_accuracy"):
            curves_x[k] = list(range(1, cfg["langevin_epochs"] + 1))
    extra = {
        "tasks": {"task1": {"dataset": d1, "classes": c1, "n_train": len(y1), "n_test": len(yt1)},
                  "task2": {"dataset": d2, "classes": c2, "n_train": len(y2), "n_test": len(yt2)}, "n_outputs": n_out},
        "arms": [{"label": a["label"], "method": a["method"], "radii": list(a["radii"]),
                  **({"quantiles": list(a["quantiles"])} if "quantiles" in a else {})} for a in arms],
        "wall_s": {**times, "total": round(time.perf_counter() - t0, 1),
                   "note": f"seconds per epoch for all {ctx.n_seeds} seed(s) at once, compilation excluded"},
    }
    result = RunResult(metrics=metrics, curves_x=curves_x, extra=extra)
    result.figures.append(_figure(ctx, result, cfg, arms))
    return result


def pixel_baselines(data, n_seeds: int) -> dict[str, np.ndarray]:
    """Class-mean template and 1-NN accuracies (%) on the pixels of the same images as the network (per seed).

    ``baseline_{template,1nn}_accuracy_task{1,2}``: trained on that task's training images, tested
    on its test images; ``..._task1_after_both``: trained on both tasks' training images on the
    shared outputs (task-2 class ``i`` → output ``i``, as the network), tested on task 1. The seeds
    share the images, so every seed gets the same values.
    """
    (x1, y1, xt1, yt1), (x2, y2, xt2, yt2) = data
    cases = {"task1": (x1, y1, xt1, yt1), "task2": (x2, y2, xt2, yt2),
             "task1_after_both": (np.concatenate([x1, x2]), np.concatenate([y1, y2]), xt1, yt1)}
    out = {}
    for name, (tx, ty, vx, vy) in cases.items():
        out[f"baseline_template_accuracy_{name}"] = np.full(n_seeds, readout.template_accuracy(tx, ty, vx, vy))
        out[f"baseline_1nn_accuracy_{name}"] = np.full(n_seeds, readout.nearest_neighbour_accuracy(tx, ty, vx, vy))
    return out


def _figure(ctx: RunContext, result: RunResult, cfg, arms) -> str:
    """``forgetting.png``: one panel per method arm, its task-2 and kept task-1 accuracy beside the baseline's."""
    from snnjax import plots

    m, x = result.metrics, list(range(1, cfg["task2_epochs3"] + 1))
    base = [a for a in arms if a["is_baseline"]]
    panels = {}
    for arm in [a for a in arms if not a["is_baseline"]] or base:
        pre = metric_prefix(arm, arms)
        curves = {"task 2": m[f"{pre}task2_accuracy"], "task 1 kept": m[f"{pre}task1_accuracy"]}
        title = f"{arm['label']} (R={arm['radii'][0]}/{arm['radii'][1]})"
        if base and arm is not base[0]:
            r = base[0]["radii"]
            curves.update({f"baseline R={r[0]}/{r[1]}: task 2": m["baseline_task2_accuracy"],
                           f"baseline R={r[0]}/{r[1]}: task 1 kept": m["baseline_task1_accuracy"]})
        panels[title] = curves
    path = plots.learning_curve_panels(ctx.out_dir / "forgetting.png", x, panels, xlabel="task-2 decision-layer epoch",
                                       title=f"continual {cfg['sequence']}")
    return str(path)


def continual() -> Experiment:
    """Thesis Method 1: task 1 then task 2 on shared outputs; forgetting with and without a method."""
    return Experiment(name="continual", description=continual.__doc__.splitlines()[0], defaults=DEFAULTS,
                      run=run, validate=validate, thesis=THESIS)
