"""Writing and summarising a run's results (``results.json``, ``config.json``).

``results.json`` schema::

    {
      "experiment": str, "seeds": int, "first_seed": int, "config": {...},
      "metrics": {name: {"mean": float | [float], "std": float | [float],
                         "per_seed": [...], "x": [...] (curves only),
                         "thesis": str (where the experiment has one)}},
      "extra": {...}, "figures": [...],
      "versions": {"snnjax": ..., "jax": ..., "python": ...},
      "wall_time_s": float, "complete": bool, "date": iso-8601
    }

``seeds`` runs computed seeds ``first_seed, …, first_seed + seeds − 1`` of the
family ``config["seed"]``; ``per_seed`` lists them in that order. A document
made by :func:`merge_results` (``snnjax merge``) lists its seeds in
``seed_ids`` and its parts in ``merged_from``.

Files are written atomically (a temporary file renamed into place), so a crash
never leaves a half-written ``results.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SnnjaxError


class MergeError(SnnjaxError):
    """Runs that cannot be merged into one (see :func:`merge_results`)."""


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
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN, said once by the value itself
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
                  thesis: Mapping[str, str] | None = None, complete: bool = True,
                  first_seed: int = 0) -> dict[str, Any]:
    """The ``results.json`` document of a run."""
    thesis = thesis or {}
    metrics = {
        name: summarise(values, result.curves_x.get(name), thesis.get(name))
        for name, values in result.metrics.items()
    }
    return {
        "experiment": experiment,
        "seeds": n_seeds,
        "first_seed": int(first_seed),
        "config": to_jsonable(dict(config)),
        "metrics": metrics,
        "extra": to_jsonable(result.extra),
        "figures": list(result.figures),
        "versions": versions(),
        "wall_time_s": round(float(wall_time_s), 3),
        "complete": bool(complete),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def seed_ids(doc: Mapping[str, Any]) -> list[int]:
    """The seed indices a results document holds, in ``per_seed`` order."""
    if "seed_ids" in doc:
        return [int(i) for i in doc["seed_ids"]]
    first = int(doc.get("first_seed", 0))
    return list(range(first, first + int(doc["seeds"])))


def merge_results(docs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """One results document from runs of the same experiment and config on disjoint seeds.

    The runs' per-seed values are joined in seed order and mean ± std are
    computed again over all of them, so the merged document reads as one run
    over every seed (e.g. seeds 0–15 and 16–31 run as two processes with
    ``--first-seed``). ``extra`` keeps the entries on which all parts agree;
    each part's whole ``extra``, wall time and versions are kept under
    ``merged_from``; ``wall_time_s`` is the sum of the parts'.

    Raises:
        MergeError: fewer than two documents, different experiments or configs,
            an interrupted run, overlapping seeds, or different metrics or x values.
    """
    if len(docs) < 2:
        raise MergeError("give at least two run directories to merge")
    first = docs[0]
    for doc, name in zip(docs, names):
        if doc.get("experiment") != first.get("experiment"):
            raise MergeError(f"{name} is a run of {doc.get('experiment')!r}, {names[0]} of "
                             f"{first.get('experiment')!r}: only runs of one experiment can be merged")
        if doc.get("config") != first.get("config"):
            diff = sorted(k for k in set(doc.get("config", {})) | set(first.get("config", {}))
                          if doc.get("config", {}).get(k) != first.get("config", {}).get(k))
            raise MergeError(f"{name} and {names[0]} differ in config keys {diff}: only runs of the same config "
                             f"(on different seeds) can be merged")
        if not doc.get("complete", True):
            raise MergeError(f"{name} was interrupted; finish it first with `snnjax run --resume {name}`")
        if set(doc["metrics"]) != set(first["metrics"]):
            raise MergeError(f"{name} and {names[0]} have different metrics; were they made by the same snnjax?")
    ids = [seed_ids(d) for d in docs]
    seen: dict[int, str] = {}
    for i, name in zip(ids, names):
        for k in i:
            if k in seen:
                raise MergeError(f"seed {k} is in both {seen[k]} and {name}: merge runs of disjoint seeds "
                                 f"(`snnjax run --seeds N --first-seed K`)")
            seen[k] = name
    order = sorted(range(len(docs)), key=lambda j: ids[j][0])
    metrics = {}
    for metric, m0 in first["metrics"].items():
        for j in order:
            if docs[j]["metrics"][metric].get("x") != m0.get("x"):
                raise MergeError(f"metric {metric!r} has other x values in {names[j]} than in {names[0]}")
        values = np.concatenate([np.asarray(docs[j]["metrics"][metric]["per_seed"], dtype=float) for j in order])
        metrics[metric] = summarise(values, m0.get("x"), m0.get("thesis"))
    all_ids = [k for j in order for k in ids[j]]
    extras = [docs[j].get("extra") or {} for j in order]
    shared = {k: v for k, v in extras[0].items() if all(k in e and e[k] == v for e in extras[1:])}
    return {
        "experiment": first["experiment"],
        "seeds": len(all_ids),
        "first_seed": all_ids[0],
        "seed_ids": all_ids,
        "config": first["config"],
        "metrics": metrics,
        "extra": shared,
        "figures": [],
        "versions": first.get("versions", {}),
        "wall_time_s": round(sum(float(d.get("wall_time_s", 0.0)) for d in docs), 3),
        "complete": True,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "merged_from": [{"run": names[j], "seed_ids": ids[j], "wall_time_s": docs[j].get("wall_time_s"),
                         "date": docs[j].get("date"), "versions": docs[j].get("versions"),
                         "extra": docs[j].get("extra", {})} for j in order],
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
