"""Metrics and figure of the ``continual`` experiment: one table for all arms (with each method's
``forgetting_reduction``) and ``forgetting.png``.
"""

from __future__ import annotations

import numpy as np

from snnjax.experiment import RunContext, RunResult

from .config import metric_prefix


def _layer_metric(layer: str, name: str) -> str:
    """A per-layer metric's name: plain for the decision layer (the thesis' methods), else ``<layer>_<name>``."""
    return name if layer == "decision" else f"{layer}_{name}"


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
