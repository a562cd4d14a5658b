"""Experiment ``conv-mnist``: the thesis' task 1 (digits) on the convolutional STDP network, over many seeds.

Protocol (reference-parameters §1.3–1.5, §5): DoG + latency front end (15 steps) → conv layer 1
(30 maps, k-WTA ``k1``, lateral inhibition radius ``radius1``) trained by STDP for ``epochs1``
epochs → conv layer 2 (250 maps, ``k2``, ``radius2``) for ``epochs2`` epochs on the cached
outputs of the frozen layer 1 → decision layer (200 maps, 20 per class) trained by R-STDP for
``epochs3`` epochs, with the test accuracy (silence counted as wrong) after every epoch. The
R-STDP rates adapt once per ``rstdp_batch`` images (0 = the whole training set, as the thesis'
code does). ``network = "kheradpisheh"`` trains Kheradpisheh et al.'s two STDP layers instead and
a softmax readout (optax) on their features; its accuracy curve has one point.

The network's parts are plugins chosen by name, with parameters (TOML tables or dotted ``--set``),
through the run's registry: ``encoder`` (``dog-latency``), ``inhibition`` (the STDP layers' winner
selection, ``k-wta`` with ``k1``/``radius1`` and ``k2``/``radius2``), ``layer_rule`` (layers 1 and 2,
``spyketorch-stdp`` with the ``stdp_*`` keys) and ``decision_rule`` (``r-stdp`` with the ``rstdp_*``
keys and ``adaptive_int``); see ``docs/plugins.md``.

All seeds share the data (the first ``n_train`` / ``n_test`` images of the dataset's splits);
they differ in the initial weights and in the image order of every epoch. Layers 1 and 2 train
on the first ``n_train_stdp`` training images (0 = all ``n_train``). The wall time of every
epoch of every layer (all seeds at once; a program's first call includes its compilation, whose
time ``results.json`` → ``timing`` reports apart) is stored in ``results.json`` → ``extra.wall_s``.

The run is three phases of the run's loop (``ctx.loop``): ``layer1``, ``layer2`` and ``decision``, a
chunk per epoch, each checkpointed (``snnjax run --resume`` continues after the last epoch kept). The
front end runs once for all seeds; every other step is one program over the seeds, sharded over the
devices. Epoch ``e`` of layer 1, layer 2 and the decision layer draws from the streams ``(1, e)``,
``(2, e)``, ``(3, e)`` of each seed's key, the feature readout from ``(4, 0)``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from snnjax.config import plugin_key
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
    # the network's parts by name, with parameters, through the run's registry (docs/plugins.md)
    **{key: plugin_key(kind, name, P.PLUGIN_CHECKS.get(key)) for key, (kind, name) in P.PLUGIN_KEYS.items()},
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
            "note": f"seconds per epoch for all {n_seeds} seed(s) at once (vmapped); a program's first call includes its compilation (timing.compile_s)",
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


class _Decision(NamedTuple):
    """The decision phase's carry (checkpointed after every epoch): the layer, the per-epoch results so far."""

    w3: Any
    st3: Any
    accuracy: np.ndarray  #: (S, epochs3) test accuracy after each epoch (NaN: not run yet)
    train_accuracy: np.ndarray  #: (S, epochs3) training decisions correct during each epoch
    silence: np.ndarray  #: (S,) test silence rate after the last epoch run
    decisions: np.ndarray  #: (S, n_test) int32 test decisions after the last epoch run (−1 = silence)
    feature_density: np.ndarray  #: (S,) fraction of layer-2 neurons that spike on the training images
    readout_accuracy: np.ndarray  #: (S,) float32 softmax readout of the layer-2 features (NaN: not run)
    wall_s: np.ndarray  #: (epochs3,) seconds per epoch, all seeds at once
    readout_s: np.ndarray  #: (1,) seconds of the feature readout (NaN: not run)


def _done(seconds: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(seconds) if np.isfinite(v)]


def run(ctx: RunContext) -> RunResult:
    cfg = ctx.config
    train, test = load_data(cfg, ctx.registry)
    n_train, n_test, S = len(train), len(test), ctx.n_seeds
    n_stdp = cfg["n_train_stdp"] or n_train
    loop = ctx.loop
    pipe = P.pipeline_from_config(cfg, 10, n_train, loop=loop, registry=ctx.registry)
    has_decision = pipe.spec.decision is not None
    e1, e2 = cfg["epochs1"], cfg["epochs2"]
    e3 = cfg["epochs3"] if has_decision else 1
    total = e1 + e2 + e3
    y_train = np.asarray(train.labels)
    y_test = np.asarray(test.labels)

    # the front end does not depend on the seed: computed once, shared by every seed's programs
    t0 = time.perf_counter()
    lat0 = pipe.encode(np.concatenate([train.images, test.images]))
    t_encode = round(time.perf_counter() - t0, 3)
    lat0_stdp = lat0[:n_stdp]
    keys = ctx.seed_keys()
    state = pipe.init(keys)
    propagate_s: list[float] = []

    def times(dt1, dt2, dec: _Decision) -> dict[str, Any]:
        return {"layer1": _done(dt1), "layer2": _done(dt2), "decision": _done(dec.wall_s), "encode": t_encode,
                "propagate": propagate_s, "readout": _done(dec.readout_s)[0] if _done(dec.readout_s) else None}

    dec0 = _Decision(state.w3, state.st3, np.full((S, e3), np.nan), np.full((S, e3), np.nan), np.full((S,), np.nan),
                     np.full((S, n_test), -1, np.int32), np.full((S,), np.nan), np.full((S,), np.nan, np.float32),
                     np.full((e3,), np.nan), np.full((1,), np.nan))

    def partial(dt1, dt2, dec: _Decision, n_done: int) -> RunResult:
        return _result(dec.accuracy[:, :n_done], dec.train_accuracy[:, :n_done], dec.silence, times(dt1, dt2, dec),
                       pipe, cfg, S, n_train, n_test)

    # ---------------------------------------------------------------- layer 1: STDP epochs on the front end
    def layer1(e, carry):
        w1, st1, dts = carry
        (w1, st1), dt = P.timed(pipe.train_layer_epoch, 0, loop.fold(keys, 1, e), w1, st1, lat0_stdp)
        dts = np.array(dts)
        dts[e] = dt
        ctx.partial = partial(dts, np.full(e2, np.nan), dec0, 0)
        return w1, st1, dts

    w1, st1, dt1 = loop.phase("layer1", e1, layer1, (state.w1, state.st1, np.full((e1,), np.nan)), unit="epochs",
                              report=lambda done: (done, total))

    # ---------------------------------------------------------------- layer 2: on the outputs of the frozen layer 1
    lat1: dict[str, Any] = {}

    def layer2(e, carry):
        w2, st2, dts = carry
        if not lat1:
            lat1["train"], dt = P.timed(pipe.propagate, 0, w1, lat0_stdp)
            propagate_s.append(round(dt, 3))
        (w2, st2), dt = P.timed(pipe.train_layer_epoch, 1, loop.fold(keys, 2, e), w2, st2, lat1["train"])
        dts = np.array(dts)
        dts[e] = dt
        ctx.partial = partial(dt1, dts, dec0, 0)
        return w2, st2, dts

    w2, st2, dt2 = loop.phase("layer2", e2, layer2, (state.w2, state.st2, np.full((e2,), np.nan)), unit="epochs",
                              report=lambda done: (e1 + done, total))
    lat1.clear()  # free the layer-2 training cache

    # ---------------------------------------------------------------- decision layer (R-STDP) / softmax readout
    lat2: dict[str, Any] = {}

    def features():
        if not lat2:
            lat, dt = P.timed(pipe.features, w1, w2, lat0)
            propagate_s.append(round(dt, 3))
            lat2.update(train=lat[:, :n_train], test=lat[:, n_train:])
            lat2["density"] = P.spike_density(lat2["train"], pipe.T)
        return lat2["train"], lat2["test"]

    def decision(i, dec: _Decision) -> _Decision:
        lat2_train, lat2_test = features()
        acc, train_acc, dts = np.array(dec.accuracy), np.array(dec.train_accuracy), np.array(dec.wall_s)
        w3, st3, decisions, ro_acc, ro_s = dec.w3, dec.st3, dec.decisions, dec.readout_accuracy, dec.readout_s
        if has_decision:
            (w3, st3, stats), dt = P.timed(pipe.decision_epoch, loop.fold(keys, 3, i), w3, st3, lat2_train, y_train)
            ev = pipe.evaluate(w3, lat2_test, y_test)
            train_acc[:, i] = 100.0 * np.asarray(stats.correct) / n_train
            decisions = np.asarray(ev.decisions, np.int32)
            if i == e3 - 1 and cfg["feature_readout"]:
                # the optax softmax readout on the same layer-2 features: tells weak features
                # apart from a decision layer that learns less than the features allow
                ro, rdt = P.timed(pipe.readout, loop.fold(keys, 4, 0), lat2_train, y_train, lat2_test, y_test,
                                  steps=cfg["readout_steps"])
                ro_acc, ro_s = np.asarray(ro.accuracy, np.float32), np.array([round(rdt, 3)])
        else:
            ev, dt = P.timed(pipe.readout, loop.fold(keys, 3, 0), lat2_train, y_train, lat2_test, y_test,
                             steps=cfg["readout_steps"])
        acc[:, i] = ev.accuracy
        dts[i] = dt
        dec = dec._replace(w3=w3, st3=st3, accuracy=acc, train_accuracy=train_acc, silence=np.asarray(ev.silence, float),
                           decisions=decisions, feature_density=np.asarray(lat2["density"], float),
                           readout_accuracy=ro_acc, wall_s=dts, readout_s=ro_s)
        ctx.partial = partial(dt1, dt2, dec, i + 1)
        return dec

    dec = loop.phase("decision", e3, decision, dec0, unit="epochs", report=lambda done: (e1 + e2 + done, total))
    lat2.clear()

    diag: dict[str, Any] = {"convergence": {"layer1": P.convergence(w1).round(5).tolist(),
                                            "layer2": P.convergence(w2).round(5).tolist()},
                            "feature_density": np.asarray(dec.feature_density).round(5).tolist()}
    if has_decision:
        diag["confusion"] = confusion(dec.decisions, y_test).tolist()
        if np.all(np.isfinite(dec.readout_accuracy)):
            diag["feature_readout_accuracy"] = np.round(np.asarray(dec.readout_accuracy), 3).tolist()
    result = _result(np.asarray(dec.accuracy), np.asarray(dec.train_accuracy), np.asarray(dec.silence),
                     times(dt1, dt2, dec), pipe, cfg, S, n_train, n_test, diag)
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
