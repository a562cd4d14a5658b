"""Figures and comparison tables drawn from finished runs' ``results.json``.

``snnjax plot RUN_DIR`` calls :func:`plot_run`; ``snnjax report RUN_DIR...``
calls :func:`report`. Both read only what a run left in its directory, so
figures can be redrawn and runs compared long after (and on another machine
than) the runs themselves:

* curve metrics (``[n_seeds, n_points]`` per seed) → learning curves, mean ±
  std band over seeds (:func:`snnjax.plots.learning_curves`); curves sharing
  the same x values share a figure;
* metrics named ``responses_*`` → grouped bars of mean ± std
  (:func:`snnjax.plots.grouped_bars`): scalar ones side by side, one bar per
  metric; ``[n_seeds, n_groups]`` ones as one series each over the groups;
* ``RUN_DIR/weights.npz`` with an array ``W`` (or arrays ``W_*``) shaped
  ``[n_seeds, n_pre, n_post]`` or ``[n_pre, n_post]`` → receptive fields of
  the first seed (:func:`snnjax.plots.receptive_fields`; square ``n_pre``);
* ``RUN_DIR/raster.npz`` → a spike raster: either ``spikes`` (bool,
  ``[T, N]`` or ``[n_seeds, T, N]``, first seed drawn) with optional
  ``dt_ms``, or spike events ``t`` (ms) and ``i`` (neuron index).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SnnjaxError

__all__ = ["ResultsError", "check_weights_file", "format_metric", "load_results", "plot_run", "raster", "report"]

#: Receptive fields show at most this many postsynaptic neurons per panel.
MAX_FIELDS = 100


class ResultsError(SnnjaxError):
    """A run directory without a readable ``results.json``."""


def load_results(run_dir: str | Path) -> dict[str, Any]:
    """Read ``RUN_DIR/results.json`` (or a path to a results file itself).

    Raises:
        ResultsError: the directory or file is missing, is not valid JSON, or
            is not a snnjax results document.
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / "results.json"
    elif not path.exists():
        raise ResultsError(f"{str(run_dir)!r} does not exist: give the output directory of a `snnjax run`")
    if not path.is_file():
        hint = (" The run finished no part yet; if it has a checkpoint, continue it with "
                f"`snnjax run --resume {path.parent}`.") if (path.parent / "config.json").is_file() else \
            " Is this the output directory of a `snnjax run`?"
        raise ResultsError(f"no results.json in {str(path.parent)!r}.{hint}")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{str(path)!r} is not valid JSON ({exc}): the file is damaged. Rerun the experiment "
                           f"(or continue it with `snnjax run --resume {path.parent}`).") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        raise ResultsError(f"{str(path)!r} is not a snnjax results file (no 'metrics' table)")
    for name, m in doc["metrics"].items():
        if not isinstance(m, dict) or "mean" not in m:
            raise ResultsError(f"{str(path)!r}: metric {name!r} has no 'mean'; the file is damaged or not from snnjax")
    return doc


# --------------------------------------------------------------------------- plots


def _array(values: Any) -> np.ndarray:
    """JSON lists (``None`` for NaN) → a float array."""
    if isinstance(values, list):
        values = [_array(v) if isinstance(v, list) else (np.nan if v is None else v) for v in values]
    return np.asarray(values, dtype=float)


def _per_seed(m: Mapping[str, Any]) -> np.ndarray:
    if "per_seed" in m:
        return _array(m["per_seed"])
    return _array([m["mean"]])  # no per-seed values: one "seed" holding the mean


def _is_curve(m: Mapping[str, Any]) -> bool:
    return isinstance(m.get("mean"), list)


def _square(n: int) -> tuple[int, int] | None:
    side = math.isqrt(n)
    return (side, side) if side * side == n else None


def _never_fatal(draw):
    from .plots import never_fatal

    return never_fatal(draw)


@_never_fatal
def raster(path: Path, times_ms: np.ndarray, neurons: np.ndarray, *, n_neurons: int | None = None,
           title: str = "") -> Path:
    """A spike raster (one dot per spike) written to ``path``."""
    from .plots import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.scatter(np.asarray(times_ms, dtype=float), np.asarray(neurons), s=2, marker="|", color="black")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron")
    if n_neurons:
        ax.set_ylim(-0.5, n_neurons - 0.5)
    if title:
        ax.set_title(title)
    return _save(plt, fig, path)


def _plot_curves(doc: Mapping[str, Any], out: Path) -> list[Path]:
    from .plots import learning_curves

    groups: dict[tuple, dict[str, np.ndarray]] = {}
    for name, m in doc["metrics"].items():
        if not _is_curve(m) or name.startswith("responses_"):
            continue
        values = _per_seed(m)
        if values.ndim != 2 or values.shape[1] == 0:
            continue
        x = tuple(float(v) for v in m.get("x") or range(1, values.shape[1] + 1))
        if len(x) != values.shape[1]:
            x = tuple(float(v) for v in range(1, values.shape[1] + 1))
        groups.setdefault(x, {})[name] = values
    extra = doc.get("extra") or {}
    paths = []
    for x, curves in groups.items():
        names = list(curves)
        # metric names may carry an arm's label ("langevin-ranges 0.25/0.75:task1_accuracy"): keep the file name plain
        stem = "learning_curves" if len(groups) == 1 else "learning_curves_" + re.sub(r"[^\w.-]+", "_", names[0])
        accuracy = all("acc" in n for n in names)
        paths.append(learning_curves(out / f"{stem}.png", list(x), curves,
                                     xlabel=str(extra.get("xlabel", "training images")),
                                     ylabel="accuracy (%)" if accuracy else "value",
                                     title=str(doc.get("experiment", ""))))
    return paths


def _plot_responses(doc: Mapping[str, Any], out: Path) -> list[Path]:
    from .plots import grouped_bars

    scalars: dict[str, np.ndarray] = {}
    vectors: dict[int, tuple[list[str], dict[str, np.ndarray]]] = {}
    for name, m in doc["metrics"].items():
        if not name.startswith("responses_"):
            continue
        values = _per_seed(m)
        label = name[len("responses_"):] or name
        if values.ndim == 1:
            scalars[label] = values
        elif values.ndim == 2:
            n_groups = values.shape[1]
            groups = [str(g) for g in (m.get("x") or range(n_groups))]
            if len(groups) != n_groups:
                groups = [str(g) for g in range(n_groups)]
            vectors.setdefault(n_groups, (groups, {}))[1][label] = values
    paths = []

    def log_scale(arrays: Iterable[np.ndarray]) -> bool:
        means = np.abs(np.concatenate([np.atleast_1d(np.nanmean(a, axis=0)) for a in arrays]))
        means = means[np.isfinite(means) & (means > 0)]
        return bool(means.size and means.max() / means.min() > 100)

    title = str(doc.get("experiment", ""))
    if scalars:
        n = min(len(v) for v in scalars.values())
        stacked = np.stack([v[:n] for v in scalars.values()], axis=1)
        paths.append(grouped_bars(out / "responses.png", list(scalars), {"responses": stacked},
                                  ylabel="response (spikes)", title=title, log=log_scale([stacked])))
    for n_groups, (groups, series) in sorted(vectors.items(), key=lambda item: item[0]):
        stem = "responses_groups" if len(vectors) == 1 else f"responses_groups_{n_groups}"
        paths.append(grouped_bars(out / f"{stem}.png", groups, series, ylabel="response (spikes)", title=title,
                                  log=log_scale(series.values())))
    return paths


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except Exception as exc:  # noqa: BLE001 - any failure to read is the same problem for the user
        raise ResultsError(f"{str(path)!r} cannot be read ({type(exc).__name__}: {exc}); the file is damaged") from exc


def _plot_weights(run_dir: Path, out: Path) -> list[Path]:
    from .plots import receptive_fields

    path = run_dir / "weights.npz"
    if not path.is_file():
        return []
    arrays = _load_npz(path)
    by_shape: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for name, w in arrays.items():
        if name != "W" and not name.startswith("W_"):
            continue
        w = np.asarray(w, dtype=float)
        title = name
        if w.ndim == 3:
            title = f"{name} (seed 0 of {w.shape[0]})"
            w = w[0]
        if w.ndim != 2:
            continue
        shape = _square(w.shape[0])
        if shape is None:
            continue
        if w.shape[1] > MAX_FIELDS:
            title += f", first {MAX_FIELDS} of {w.shape[1]}"
            w = w[:, :MAX_FIELDS]
        by_shape.setdefault(shape, {})[title] = w
    paths = []
    for k, (shape, panels) in enumerate(by_shape.items()):
        stem = "receptive_fields" if k == 0 else f"receptive_fields_{shape[0]}x{shape[1]}"
        paths.append(receptive_fields(out / f"{stem}.png", panels, shape=shape))
    return paths


def _plot_raster(run_dir: Path, out: Path) -> list[Path]:
    path = run_dir / "raster.npz"
    if not path.is_file():
        return []
    arrays = _load_npz(path)
    if "t" in arrays and "i" in arrays:
        t, i = np.ravel(arrays["t"]), np.ravel(arrays["i"])
        n = int(arrays["n"]) if "n" in arrays else None
        return [raster(out / "raster.png", t, i, n_neurons=n)]
    spikes = arrays.get("spikes")
    if spikes is None:
        raise ResultsError(f"{str(path)!r} holds neither 'spikes' nor 't' and 'i' arrays")
    spikes = np.asarray(spikes)
    title = ""
    if spikes.ndim == 3:
        title = f"seed 0 of {spikes.shape[0]}"
        spikes = spikes[0]
    if spikes.ndim != 2:
        raise ResultsError(f"{str(path)!r}: 'spikes' must be [T, N] or [n_seeds, T, N], got shape {spikes.shape}")
    dt = float(arrays["dt_ms"]) if "dt_ms" in arrays else 1.0
    steps, neurons = np.nonzero(spikes)
    return [raster(out / "raster.png", steps * dt, neurons, n_neurons=spikes.shape[1], title=title)]


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """(Re)draw the figures of the run in ``run_dir``; return the paths written.

    Args:
        run_dir: a run's output directory (holding ``results.json``).
        out_dir: where to write the PNGs (default: ``run_dir``).

    Raises:
        ResultsError: ``results.json`` (or an ``.npz`` beside it) is missing or damaged.
    """
    run_dir = Path(run_dir)
    doc = load_results(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    paths = (_plot_curves(doc, out) + _plot_responses(doc, out) + _plot_weights(run_dir, out)
             + _plot_raster(run_dir, out))
    return [p for p in paths if p.is_file()]  # a figure that failed was a warning


def check_weights_file(path: str | Path, ranks: Sequence[int] = (2, 3)) -> None:
    """Check a run's ``weights.npz`` before it is used: readable, with an array ``W`` of one of ``ranks``.

    A missing file is left to the caller.

    Raises:
        ResultsError: the file is damaged (e.g. truncated) or ``W`` is missing or has another rank.
    """
    path = Path(path)
    if not path.is_file():
        return
    arrays = _load_npz(path)
    if "W" not in arrays:
        raise ResultsError(f"{str(path)!r} has no array 'W' (it holds {', '.join(sorted(arrays)) or 'nothing'})")
    if arrays["W"].ndim not in ranks:
        raise ResultsError(f"{str(path)!r}: 'W' must have {' or '.join(map(str, ranks))} dimensions "
                           f"([n_seeds,] n_pre, n_post), got shape {arrays['W'].shape}; the file is damaged or "
                           f"not from this kind of run")


# --------------------------------------------------------------------------- report


def _num(v: Any) -> str:
    if v is None:
        return "nan"
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    if 1e4 <= abs(v) < 1e12:
        return f"{v:.0f}"
    return f"{v:.4g}"


def format_metric(m: Mapping[str, Any], n_seeds: int | None = None) -> str:
    """One metric of ``results.json`` as ``mean ± std (n seeds)``.

    A curve shows its last point: ``mean ± std (n seeds; final of K points)``.
    """
    mean, std = m.get("mean"), m.get("std")
    per_seed = m.get("per_seed")
    n = len(per_seed) if isinstance(per_seed, list) else n_seeds
    seeds = f"{n} seed{'s' if n != 1 else ''}" if n is not None else "? seeds"
    if isinstance(mean, list):
        if not mean:
            return "—"
        last_std = std[-1] if isinstance(std, list) and std else None
        return f"{_num(mean[-1])} ± {_num(last_std)} ({seeds}; final of {len(mean)} points)"
    return f"{_num(mean)} ± {_num(std)} ({seeds})"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _column_names(run_dirs: Sequence[Path]) -> list[str]:
    names = [p.resolve().name or str(p) for p in run_dirs]
    if len(set(names)) < len(names):
        names = [str(p) for p in run_dirs]
    return names


def report(run_dirs: Sequence[str | Path]) -> str:
    """A Markdown table comparing runs: one column per run, one row per metric.

    Cells read ``mean ± std (n seeds)``; a ``thesis`` column is added when any
    run's metrics carry the thesis figure.

    Raises:
        ResultsError: a run's ``results.json`` is missing or damaged.
    """
    if not run_dirs:
        raise ResultsError("give at least one run directory")
    dirs = [Path(d) for d in run_dirs]
    docs = [load_results(d) for d in dirs]
    columns = _column_names(dirs)
    metrics: list[str] = []
    thesis: dict[str, list[str]] = {}
    for doc in docs:
        for name, m in doc["metrics"].items():
            if name not in metrics:
                metrics.append(name)
            t = m.get("thesis")
            if t and t not in thesis.setdefault(name, []):
                thesis[name].append(str(t))
    with_thesis = any(thesis.values())

    header = ["metric", *columns] + (["thesis"] if with_thesis else [])
    rows = [["experiment", *[str(d.get("experiment", "?")) for d in docs]] + ([""] if with_thesis else []),
            ["complete", *["yes" if d.get("complete", True) else "no (interrupted)" for d in docs]]
            + ([""] if with_thesis else [])]
    for name in metrics:
        row = [name]
        for doc in docs:
            m = doc["metrics"].get(name)
            row.append(format_metric(m, doc.get("seeds")) if m is not None else "—")
        if with_thesis:
            row.append(" / ".join(thesis.get(name, [])))
        rows.append(row)
    lines = ["| " + " | ".join(_cell(c) for c in header) + " |",
             "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
