"""The body of the ``continual`` experiment: load both tasks, run every arm, gather the metrics.
"""

from __future__ import annotations

import time

import numpy as np

from snnjax.experiment import RunContext, RunResult

from .arm import run_arm
from .config import method_arms, tasks
from .data import load_task, pixel_baselines
from .metrics import _figure, arm_metrics


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
    cache: dict = {}  # what the arms share (pipelines, task 1, task-2 features, Langevin ranges)
    results, partial_metrics = [], {}
    for arm in arms:
        results.append(run_arm(arm, cfg, keys, data, n_out, ctx, cache, times, partial_metrics))
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
                   "note": f"seconds per epoch for all {ctx.n_seeds} seed(s) at once; a program's first call includes its compilation (timing.compile_s)"},
    }
    result = RunResult(metrics=metrics, curves_x=curves_x, extra=extra)
    result.figures.append(_figure(ctx, result, cfg, arms))
    return result
