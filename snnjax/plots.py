"""Figures of a run: learning curves with seed bands, receptive fields, responses.

Every function takes plain numpy arrays, writes one PNG (atomically) and returns
its path; a figure that fails is a warning (:func:`never_fatal`), never an
exception that would lose a run's results. matplotlib runs with the
non-interactive ``Agg`` backend.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    """Lay out ``fig``, write it to ``path`` atomically (PNG, 110 dpi), close it and return the path."""
    import io

    from .rundir import atomic_write

    try:
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=110, format="png")
    finally:
        plt.close(fig)
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()))
    return Path(path)


def never_fatal(draw: Callable[..., Path]) -> Callable[..., Path]:
    """A figure that cannot be drawn or written is a warning, never a lost run.

    The wrapped function returns its ``path`` argument either way; the file
    exists only when the figure was written (``snnjax run`` lists only those).
    """

    @functools.wraps(draw)
    def wrapper(path: Path, *args: Any, **kwargs: Any) -> Path:
        try:
            return draw(path, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - results matter more than a figure
            warnings.warn(f"figure {path} not drawn: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
            return Path(path)

    return wrapper


def _bands(ax, x: np.ndarray, curves: Mapping[str, np.ndarray]) -> None:
    """One mean line and ± std band per curve ``[n_seeds, n_points]`` on ``ax``."""
    for label, values in curves.items():
        values = np.asarray(values, dtype=float)
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        # A curve of one point has no line to draw: mark each point, and show its spread as an error bar.
        line, = ax.plot(x, mean, marker="o" if len(mean) == 1 else None, label=f"{label} (n={values.shape[0]} seeds)")
        if len(mean) == 1:
            ax.errorbar(x, mean, yerr=std, color=line.get_color(), capsize=4, linestyle="none")
        else:
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.25)


@never_fatal
def learning_curves(path: Path, x: Sequence[float], curves: Mapping[str, np.ndarray], *, xlabel: str = "training images",
                    ylabel: str = "test accuracy (%)", title: str = "", marks: Mapping[str, tuple[float, float]] | None = None) -> Path:
    """Mean ± std band over seeds for each curve ``[n_seeds, n_points]``.

    ``marks`` maps a label to an ``(x, y)`` point drawn as a marker (e.g. the
    thesis figure).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    _bands(ax, np.asarray(x, dtype=float), curves)
    for label, (mx, my) in (marks or {}).items():
        ax.plot([mx], [my], marker="*", markersize=12, linestyle="none", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


@never_fatal
def learning_curve_panels(path: Path, x: Sequence[float], panels: Mapping[str, Mapping[str, np.ndarray]], *,
                          xlabel: str = "training images", ylabel: str = "test accuracy (%)", title: str = "") -> Path:
    """:func:`learning_curves` side by side, one panel per entry of ``panels`` (title → curves), shared y axis."""
    plt = _plt()
    n = max(len(panels), 1)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.0), sharey=True, squeeze=False)
    xs = np.asarray(x, dtype=float)
    for ax, (name, curves) in zip(axes[0], panels.items()):
        _bands(ax, xs, curves)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


@never_fatal
def receptive_fields(path: Path, panels: Mapping[str, np.ndarray], *, shape: tuple[int, int] = (28, 28),
                     columns: int = 10) -> Path:
    """Tiles of each postsynaptic neuron's input weights (``W[n_pre, n_post]``), one panel per model."""
    plt = _plt()
    n_panels = len(panels)
    fig, axes = plt.subplots(1, n_panels, figsize=(5.0 * n_panels, 5.0), squeeze=False)
    for ax, (title, weights) in zip(axes[0], panels.items()):
        w = np.asarray(weights, dtype=float)
        n_post = w.shape[1]
        cols = min(columns, n_post)
        rows = int(np.ceil(n_post / cols))
        h, wd = shape
        canvas = np.full((rows * (h + 1) - 1, cols * (wd + 1) - 1), np.nan)
        for j in range(n_post):
            r, c = divmod(j, cols)
            canvas[r * (h + 1): r * (h + 1) + h, c * (wd + 1): c * (wd + 1) + wd] = w[:, j].reshape(shape)
        im = ax.imshow(canvas, cmap="hot_r", interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _save(plt, fig, path)


@never_fatal
def grouped_bars(path: Path, groups: Sequence[str], series: Mapping[str, np.ndarray], *, ylabel: str,
                 title: str = "", log: bool = False) -> Path:
    """Bars of mean ± std over seeds; ``series[name]`` is ``[n_seeds, len(groups)]``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    n = len(series)
    width = 0.8 / max(n, 1)
    xs = np.arange(len(groups))
    for k, (name, values) in enumerate(series.items()):
        values = np.asarray(values, dtype=float)
        ax.bar(xs + (k - (n - 1) / 2) * width, np.nanmean(values, axis=0), width, yerr=np.nanstd(values, axis=0),
               capsize=3, label=f"{name} (n={values.shape[0]})")
    ax.set_xticks(xs, groups)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("symlog")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(plt, fig, path)
