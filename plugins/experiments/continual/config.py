"""Config of the ``continual`` experiment: its keys and defaults, the task sequences, the
checks made before any data is read, and the arms (method × quantile pair) a run compares.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from snnjax.config import plugin_list
from snnjax.errors import ConfigError
from snnjax.plugins import choice_name
from snnjax.quantiles import check_probability

from ... import continual_transforms as methods
from ...conv import networks as N
from ...conv import pipeline as P

#: the layers a method may act on (``freeze_layers``, ``langevin_layers``)
LAYERS = ("conv1", "conv2", "decision")


CONV_LAYERS = LAYERS[:2]

#: Key tag of task 1's decision-layer epochs: epoch ``e`` draws its image order from
#: ``loop.fold(keys, TASK1_DECISION_TAG, e)`` (the Langevin epoch 0 is epoch ``epochs3`` of it).
TASK1_DECISION_TAG = 13


#: the thesis' methods, built in (each configured by its own keys); any other entry of ``method`` is a
#: registered regularizer (a name, or a table with parameters) run as a method: see :func:`method_arms`
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
    "method": plugin_list("regularizer", ["baseline"], builtins=METHODS),
    "compare_baseline": True,
    "baseline_radius1": 0,
    "baseline_radius2": 0,
    "freeze_percentile": 90.0,
    "freeze_layers": ["decision"],
    "langevin_epochs": 24,
    "langevin_sigma": 4e-4,
    "langevin_every": 100,
    "langevin_chunk_images": 2000,
    "langevin_stop": 0.0,
    "langevin_epoch0_adaptive_int": 0.0,
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


def _check_methods(cfg: Mapping[str, Any]) -> list[Any]:
    """``cfg["method"]``: built-in names and regularizer choices (checked against the run's registry when the
    config was resolved), none repeated; or :class:`ConfigError`."""
    values = list(cfg["method"])
    if not values:
        raise ConfigError(f"method is empty; choose one or more of {', '.join(METHODS)} or a registered regularizer")
    for v in values:
        if not (isinstance(v, str) and v) and not (isinstance(v, Mapping) and isinstance(v.get("name"), str)):
            raise ConfigError(f"method entries are names or tables {{name = \"...\", parameter = value}}, got {v!r}")
    canonical = [json.dumps(v, sort_keys=True, default=str) for v in values]
    if len(set(canonical)) != len(canonical):
        raise ConfigError(f"method={values} names a method twice")
    return values


def validate(cfg: Mapping[str, Any]) -> None:
    """Check the config before any data is read or anything is compiled."""
    P.validate_network(cfg)
    if cfg["network"] != "mozafari":
        raise ConfigError("continual needs a network with a decision layer: network = 'mozafari'")
    chosen = _check_methods(cfg)
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
    for key in ("epochs1", "epochs2", "task2_epochs1", "task2_epochs2", "langevin_epochs", "langevin_chunk_images",
                "n_train", "n_test", "n_train_stdp", "n_outputs", "baseline_radius1", "baseline_radius2"):
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
    a0 = cfg["langevin_epoch0_adaptive_int"]
    if not (isinstance(a0, (int, float)) and not isinstance(a0, bool) and a0 >= 0):
        raise ConfigError(f"langevin_epoch0_adaptive_int is the adaptive_int of a noise-free R-STDP epoch before the "
                          f"noisy ones (0: none; the thesis used 0.5); it must be a number >= 0, got {a0!r}")
    if a0 > 0 and "langevin-ranges" in chosen and "decision" not in cfg["langevin_layers"]:
        raise ConfigError(f"langevin_epoch0_adaptive_int={a0} sets the decision layer's rates before its noisy epochs, "
                          f"but langevin_layers={list(cfg['langevin_layers'])} has no decision; add decision or set it to 0")
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


def langevin_probabilities(cfg: Mapping[str, Any]) -> tuple[float, ...]:
    """Every quantile the Langevin arms need (``langevin_low`` and ``langevin_high``), sorted, once each."""
    return tuple(sorted({float(p) for p in [*cfg["langevin_low"], *cfg["langevin_high"]]}))


def method_arms(cfg: Mapping[str, Any]) -> list[dict]:
    """The arms of a run, baseline first: one per method, one per Langevin quantile pair.

    Each arm is ``{"label", "method", "radii", "is_baseline", "index", "done", "total"}``, Langevin
    arms also ``"quantiles": (low, high)``. All arms run on the same seeds and share whatever
    does not depend on the method (task-1 training, the task-2 feature layers, the Langevin run).

    An entry of ``method`` that is not a plain built-in name (:data:`METHODS`) is a registered
    regularizer (``--set method=NAME``, ``[[method]] name = "NAME"`` with its parameters): its arm
    (``"method": "regularizer:<label>"``, ``"choice"``: the entry; label = the plugin name, ``#2`` …
    when repeated, `` (regularizer)`` when it is also a built-in's name) chains it after R-STDP on the
    decision layer in task 2 (:func:`snnjax_plugins.continual_transforms.method_transform`).
    """
    radii = (cfg["radius1"], cfg["radius2"])
    pairs = list(zip(map(float, cfg["langevin_low"]), map(float, cfg["langevin_high"])))
    arms: list[dict] = []
    labels: dict[str, int] = {}
    for method in cfg["method"]:
        if not (isinstance(method, str) and method in METHODS):  # a registered regularizer as a method
            name = choice_name(method) + (" (regularizer)" if choice_name(method) in METHODS else "")
            labels[name] = labels.get(name, 0) + 1
            label = name if labels[name] == 1 else f"{name}#{labels[name]}"
            arms.append({"label": label, "method": f"regularizer:{label}", "choice": method, "radii": radii})
        elif method == "langevin-ranges":
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
