"""Experiment ``conv-mnist``: the thesis' task 1 (digits) on the convolutional STDP network, over many seeds.

Protocol (reference-parameters §1.3–1.5, §5): DoG + latency front end (15 steps) → conv layer 1
(30 maps, k-WTA ``k1``, lateral inhibition radius ``radius1``) trained by STDP for ``epochs1``
epochs → conv layer 2 (250 maps, ``k2``, ``radius2``) for ``epochs2`` epochs on the cached
outputs of the frozen layer 1 → decision layer (200 maps, 20 per class) trained by R-STDP for
``epochs3`` epochs, with the test accuracy (silence counted as wrong) after every epoch. The
R-STDP rates adapt once per ``rstdp_batch`` images (0 = the whole training set, as the thesis'
code does). ``network = "kheradpisheh"`` trains Kheradpisheh et al.'s two STDP layers instead and
a softmax readout (optax) on their features; its accuracy curve has one point.

All seeds share the data (the first ``n_train`` / ``n_test`` images of the dataset's splits);
they differ in the initial weights and in the image order of every epoch. Layers 1 and 2 train
on the first ``n_train_stdp`` training images (0 = all ``n_train``). The wall time of every
epoch of every layer (all seeds at once, compilation excluded) is stored in
``results.json`` → ``extra.wall_s``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from snnjax.checkpoint import resume_or, save_chunk
from snnjax.errors import ConfigError
from snnjax.experiment import Experiment, RunContext, RunResult

from ..conv import pipeline as P
from ..readout import baselines_per_seed

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "dataset": "mnist-embedded",
    "data_dir": "",
    "n_train": 4000,
    "n_test": 1000,
    "n_train_stdp": 0,
    "epochs1": 2,
    "epochs2": 4,
    "epochs3": 50,
    "feature_readout": True,
    **P.NETWORK_DEFAULTS,
}

#: The thesis' task-1 accuracy per (R1, R2) (24,000 training images), for the figure and summary.
THESIS_TASK1 = {(0, 0): 90.8, (3, 1): 93.6, (5, 1): 94.8, (5, 2): 94.8}

THESIS = {
    "final_accuracy": "task 1, 24,000 MNIST images: R1/R2 = 0/0 → 90.8, 3/1 → 93.6, 5/1 → 94.8, 5/2 → 94.8 % "
                      "(thesis); 97.2 % on full MNIST (Mozafari et al. 2019)",
}

PHASES = ("layer1", "layer2", "decision")


def validate(cfg: Mapping[str, Any]) -> None:
    """Check the config before any data is read or anything is compiled."""
    P.validate_network(cfg)
    for key in ("n_train", "n_test", "epochs3"):
        if not P._is_int(cfg[key]) or cfg[key] < 1:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]!r}")
    for key in ("epochs1", "epochs2", "n_train_stdp"):
        if not P._is_int(cfg[key]) or cfg[key] < 0:
            raise ConfigError(f"{key} must be a non-negative integer, got {cfg[key]!r}")
    if not isinstance(cfg["feature_readout"], bool):
        raise ConfigError(f"feature_readout must be true or false, got {cfg['feature_readout']!r}")
    if cfg["n_train_stdp"] > cfg["n_train"]:
        raise ConfigError(f"n_train_stdp={cfg['n_train_stdp']} exceeds n_train={cfg['n_train']}")


def load_data(cfg: Mapping[str, Any], registry: Any):
    """``(train, test)`` :class:`snnjax.data.Dataset` s: the first ``n_train`` / ``n_test`` images."""
    from snnjax import data

    kw = {"data_dir": cfg["data_dir"] or None, "registry": registry}
    train = data.load(cfg["dataset"], "train", limit=cfg["n_train"], **kw)
    test = data.load(cfg["dataset"], "test", limit=cfg["n_test"], **kw)
    for ds in (train, test):
        if ds.images.shape[1:] != (28, 28):
            raise ConfigError(f"dataset {cfg['dataset']!r} has images of shape {ds.images.shape[1:]}; the conv networks need 28×28")
        bad = sorted(set(np.unique(ds.labels).tolist()) - set(range(10)))
        if bad:
            raise ConfigError(f"dataset {cfg['dataset']!r} has labels {bad} outside 0..9; conv-mnist has 10 outputs")
    return train, test


def confusion(decisions: np.ndarray, labels: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """Confusion counts ``(n_classes, n_classes + 1)`` summed over seeds: rows = true class, columns =
    decision, the last column = silence. ``decisions`` is ``(S, N)`` (−1 = silence)."""
    dec = np.asarray(decisions)
    col = np.where(dec < 0, n_classes, dec)
    rows = np.broadcast_to(np.asarray(labels)[None], dec.shape)
    out = np.zeros((n_classes, n_classes + 1), np.int64)
    np.add.at(out, (rows.ravel(), col.ravel()), 1)
    return out


def _result(acc, train_acc, silence, times, pipe, cfg, n_seeds, n_train, n_test, diag=None) -> RunResult:
    e = acc.shape[1]
    last = acc[:, -1] if e else np.full((acc.shape[0],), np.nan)
    metrics = {
        "accuracy": acc,
        "train_accuracy": train_acc,
        "final_accuracy": last,
        "best_accuracy": np.max(acc, axis=1) if e else last,
        "silence_rate": silence,
    }
    per_epoch = {k: [round(v, 3) for v in vals] for k, vals in times.items() if k in PHASES}
    extra = {
        "wall_s": {
            **per_epoch,
            "mean_per_epoch": {k: (float(np.mean(v)) if v else None) for k, v in per_epoch.items()},
            "encode": times.get("encode"),
            "propagate": times.get("propagate", []),
            "readout": times.get("readout"),
            "compile": {k: round(v, 3) for k, v in pipe.compile_s.items()},
            "note": f"seconds per epoch for all {n_seeds} seed(s) at once (vmapped), compilation excluded",
        },
        "n_train": int(n_train),
        "n_test": int(n_test),
        "n_train_stdp": int(cfg["n_train_stdp"] or n_train),
        "radii": [int(cfg["radius1"]), int(cfg["radius2"])],
        "thesis_task1_accuracy": THESIS_TASK1.get((cfg["radius1"], cfg["radius2"])),
        "diagnostics": diag or {},
    }
    x = list(range(1, e + 1))
    return RunResult(metrics=metrics, curves_x={"accuracy": x, "train_accuracy": x}, extra=extra)


def run(ctx: RunContext) -> RunResult:
    cfg = ctx.config
    train, test = load_data(cfg, ctx.registry)
    n_train, n_test, S = len(train), len(test), ctx.n_seeds
    n_stdp = cfg["n_train_stdp"] or n_train
    pipe = P.pipeline_from_config(cfg, 10, n_train)
    has_decision = pipe.spec.decision is not None
    e1, e2 = cfg["epochs1"], cfg["epochs2"]
    e3 = cfg["epochs3"] if has_decision else 1
    total = e1 + e2 + e3

    times: dict[str, Any] = {"layer1": [], "layer2": [], "decision": [], "propagate": []}
    t0 = time.perf_counter()
    lat0 = pipe.encode(np.concatenate([train.images, test.images]))
    times["encode"] = round(time.perf_counter() - t0, 3)
    lat0_stdp = lat0[:n_stdp]
    keys = ctx.seed_keys()
    state = pipe.init(keys)
    acc = np.full((S, e3), np.nan)
    train_acc = np.full((S, e3), np.nan)
    silence = np.full((S,), np.nan)

    start, state, partial = resume_or(ctx, state)
    if partial is not None:
        done = max(start - e1 - e2, 0)
        acc[:, :done] = np.asarray(partial.metrics["accuracy"])[:, :done]
        train_acc[:, :done] = np.asarray(partial.metrics["train_accuracy"])[:, :done]
        silence = np.asarray(partial.metrics["silence_rate"], dtype=float)
        for k in PHASES:
            times[k] = list(partial.extra.get("wall_s", {}).get(k, []))
    y_train = np.asarray(train.labels)
    y_test = np.asarray(test.labels)

    lat1 = lat2 = None
    diag: dict[str, Any] = dict(partial.extra.get("diagnostics", {})) if partial is not None else {}
    for c in range(start, total):
        if c < e1:  # ---------------------------------------------------------- layer 1
            (w1, st1), dt = P.timed(pipe.train_layer_epoch, 0, P.epoch_keys(keys, 1, c), state.w1, state.st1, lat0_stdp)
            state = state._replace(w1=w1, st1=st1)
            times["layer1"].append(dt)
        elif c < e1 + e2:  # --------------------------------------------------- layer 2
            if lat1 is None:
                lat1, dt = P.timed(pipe.propagate, 0, state.w1, lat0_stdp)
                times["propagate"].append(round(dt, 3))
            (w2, st2), dt = P.timed(pipe.train_layer_epoch, 1, P.epoch_keys(keys, 2, c - e1), state.w2, state.st2, lat1)
            state = state._replace(w2=w2, st2=st2)
            times["layer2"].append(dt)
        else:  # ----------------------------------------------------------------- decision layer / readout
            i = c - e1 - e2
            if lat2 is None:
                lat1 = None  # free the layer-2 training cache
                lat2, dt = P.timed(pipe.features, state.w1, state.w2, lat0)
                times["propagate"].append(round(dt, 3))
                lat2_train, lat2_test = lat2[:, :n_train], lat2[:, n_train:]
                diag["convergence"] = {"layer1": P.convergence(state.w1).round(5).tolist(),
                                       "layer2": P.convergence(state.w2).round(5).tolist()}
                diag["feature_density"] = P.spike_density(lat2_train, pipe.T).round(5).tolist()
            if has_decision:
                (w3, st3, stats), dt = P.timed(pipe.decision_epoch, P.epoch_keys(keys, 3, i), state.w3, state.st3,
                                               lat2_train, y_train)
                state = state._replace(w3=w3, st3=st3)
                times["decision"].append(dt)
                ev = pipe.evaluate(state.w3, lat2_test, y_test)
                train_acc[:, i] = 100.0 * np.asarray(stats.correct) / n_train
                diag["confusion"] = confusion(ev.decisions, y_test).tolist()
                if c == total - 1 and cfg["feature_readout"]:
                    # the optax softmax readout on the same layer-2 features: tells weak features
                    # apart from a decision layer that learns less than the features allow
                    ro, dt = P.timed(pipe.readout, P.epoch_keys(keys, 4, 0), lat2_train, y_train, lat2_test, y_test,
                                     steps=cfg["readout_steps"])
                    diag["feature_readout_accuracy"] = np.round(ro.accuracy, 3).tolist()
                    times["readout"] = round(dt, 3)
            else:
                ev, dt = P.timed(pipe.readout, P.epoch_keys(keys, 3, 0), lat2_train, y_train, lat2_test, y_test,
                                 steps=cfg["readout_steps"])
                times["decision"].append(dt)
            acc[:, i] = ev.accuracy
            silence = ev.silence
        n_done = max(c + 1 - e1 - e2, 0)
        ctx.partial = _result(acc[:, :n_done], train_acc[:, :n_done], silence, times, pipe, cfg, S, n_train, n_test, diag)
        save_chunk(ctx, c + 1, state)
        ctx.progress(c + 1, total, "epochs")
    result = _result(acc, train_acc, silence, times, pipe, cfg, S, n_train, n_test, diag)
    # baselines on the same images (shared by the seeds); the linear readout is the softmax readout of
    # each seed's own layer-2 features (feature_readout)
    base = baselines_per_seed(train.images[None], y_train[None], test.images[None], y_test[None])
    result.metrics.update({k: np.repeat(v, S) for k, v in base.items()})
    if "feature_readout_accuracy" in diag:
        result.metrics["baseline_linear_readout_accuracy"] = np.asarray(diag["feature_readout_accuracy"], float)
    result.figures.extend(_figures(ctx, result, cfg))
    return result


def _figures(ctx: RunContext, result: RunResult, cfg) -> list[str]:
    from snnjax import plots

    thesis = THESIS_TASK1.get((cfg["radius1"], cfg["radius2"]))
    marks = {}
    if thesis is not None and cfg["network"] == "mozafari":
        marks[f"thesis R1/R2={cfg['radius1']}/{cfg['radius2']} (24,000 images)"] = (len(result.curves_x["accuracy"]), thesis)
    n_points = len(result.curves_x["accuracy"])
    flat = {label: np.repeat(np.asarray(result.metrics[k], float)[:, None], n_points, axis=1)
            for k, label in (("baseline_template_accuracy", "class-mean template (pixels)"),
                             ("baseline_1nn_accuracy", "1-NN (pixels)"),
                             ("baseline_linear_readout_accuracy", "linear readout of layer-2 features"))
            if k in result.metrics}
    path = plots.learning_curves(ctx.out_dir / "accuracy.png", result.curves_x["accuracy"],
                                 {"test": result.metrics["accuracy"], "train (during the epoch)": result.metrics["train_accuracy"],
                                  **flat},
                                 xlabel="decision-layer epoch", marks=marks,
                                 title=f"conv-mnist {cfg['network']} R1/R2={cfg['radius1']}/{cfg['radius2']}")
    return [str(path)]


def conv_mnist() -> Experiment:
    """Task 1 (digits) on the convolutional STDP network: layer-wise STDP, R-STDP decision, accuracy per epoch."""
    return Experiment(name="conv-mnist", description=conv_mnist.__doc__.splitlines()[0], defaults=DEFAULTS,
                      run=run, validate=validate, thesis=THESIS)
