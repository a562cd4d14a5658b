"""Writing and summarising a run's results (``results.json``, ``config.json``).

``results.json`` schema::

    {
      "experiment": str, "seeds": int, "config": {...},
      "metrics": {name: {"mean": float | [float], "std": float | [float],
                         "per_seed": [...], "x": [...] (curves only),
                         "thesis": str (where the experiment has one)}},
      "extra": {...}, "figures": [...],
      "versions": {"snnjax": ..., "jax": ..., "python": ...},
      "wall_time_s": float, "complete": bool, "date": iso-8601
    }

Files are written atomically (a temporary file renamed into place), so a crash
never leaves a half-written ``results.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np


def versions() -> dict[str, str]:
    """Versions of the packages that decide a run's numbers."""
    out = {"python": platform.python_version()}
    for pkg in ("snnjax", "jax", "jaxlib", "numpy", "equinox", "optax"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    try:
        import jax

        out["backend"] = jax.default_backend()
        out["devices"] = str(len(jax.devices()))
    except Exception:  # noqa: BLE001
        pass
    return out


def to_jsonable(obj: Any) -> Any:
    """numpy/JAX arrays and scalars → plain Python, recursively."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):
        arr = np.asarray(obj)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    return obj


def summarise(per_seed: np.ndarray, x: list | None = None, thesis: str | None = None) -> dict[str, Any]:
    """``{"mean", "std", "per_seed"}`` over the leading (seed) axis; NaN-aware."""
    arr = np.asarray(per_seed, dtype=float)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(arr, axis=0) if arr.size else np.nan
        std = np.nanstd(arr, axis=0) if arr.size else np.nan
    out: dict[str, Any] = {"mean": to_jsonable(mean), "std": to_jsonable(std), "per_seed": to_jsonable(arr)}
    if x is not None:
        out["x"] = to_jsonable(x)
    if thesis:
        out["thesis"] = thesis
    return out


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(to_jsonable(data), fh, indent=1, allow_nan=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def build_results(experiment: str, n_seeds: int, config: Mapping[str, Any], result: Any, wall_time_s: float,
                  thesis: Mapping[str, str] | None = None, complete: bool = True) -> dict[str, Any]:
    """The ``results.json`` document of a run."""
    thesis = thesis or {}
    metrics = {
        name: summarise(values, result.curves_x.get(name), thesis.get(name))
        for name, values in result.metrics.items()
    }
    return {
        "experiment": experiment,
        "seeds": n_seeds,
        "config": to_jsonable(dict(config)),
        "metrics": metrics,
        "extra": to_jsonable(result.extra),
        "figures": list(result.figures),
        "versions": versions(),
        "wall_time_s": round(float(wall_time_s), 3),
        "complete": bool(complete),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _fmt(value: Any) -> str:
    if isinstance(value, list):
        if not value:
            return "-"
        return f"{_fmt(value[-1])} (last of {len(value)})"
    if value is None:
        return "nan"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary_table(results: Mapping[str, Any]) -> str:
    """A plain-text table: metric, mean ± std over seeds, thesis figure."""
    rows = [("metric", f"mean ± std ({results['seeds']} seeds)", "thesis")]
    for name, m in results["metrics"].items():
        mean, std = m["mean"], m["std"]
        if isinstance(mean, list):
            cell = f"{_fmt(mean[-1]) if mean else '-'} ± {_fmt(std[-1]) if std else '-'} (final of {len(mean)} points)"
        else:
            cell = f"{_fmt(mean)} ± {_fmt(std)}"
        rows.append((name, cell, m.get("thesis", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
