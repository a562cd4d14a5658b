"""Writing and summarising a run's results (``results.json``, ``config.json``).

``results.json`` schema::

    {
      "experiment": str, "seeds": int, "first_seed": int, "config": {...},
      "metrics": {name: {"mean": float | [float], "std": float | [float],
                         "per_seed": [...], "x": [...] (curves only),
                         "thesis": str (where the experiment has one)}},
      "extra": {...}, "figures": [...],
      "versions": {"snnjax": ..., "jax": ..., "python": ...},
      "wall_time_s": float, "complete": bool, "date": iso-8601,
      "data": [{"dataset", "split", "kind": "embedded" | "idx" | "tfds", "files": [{"path", "sha256"}], ...}],
      "artifacts": [file names the run wrote beside it],
      "stopped_by": "interrupted" | "terminated" | "hangup" | "error" (only when "complete" is false),
      "null_values": {"metrics/NAME/per_seed": "NaN", ...} (only when some value was NaN or ±inf)
    }

``seeds`` runs computed seeds ``first_seed, …, first_seed + seeds − 1`` of the
family ``config["seed"]``; ``per_seed`` lists them in that order. A document
made by :func:`merge_results` (``snnjax merge``) lists its seeds in
``seed_ids`` and its parts in ``merged_from``.

Files are written atomically (:func:`snnjax.rundir.atomic_write`: a temporary
file, fsync, renamed into place), so a crash never leaves a half-written
``results.json``; they are strict JSON (NaN and ±inf written as ``null``, listed
under ``null_values``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
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
    for pkg in ("snnjax", "jax", "jaxlib", "numpy", "optax"):
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
    # how XLA was told to compile (snnjax.xla_options); it changes speed, not results
    out["xla_flags"] = os.environ.get("XLA_FLAGS", "")
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


def strict_json(data: Any) -> tuple[Any, dict[str, str]]:
    """``data`` as plain JSON with every NaN/±inf replaced by ``null``.

    Returns the converted data and ``{path: what}`` for each replaced value's
    container (``path`` like ``metrics/accuracy/per_seed``; ``what`` the
    non-finite values it held, e.g. ``"NaN"`` or ``"NaN, inf"``), so that
    strict JSON parsers in any language read the file.
    """
    found: dict[str, set[str]] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, dict):
            return {k: walk(v, f"{path}/{k}" if path else str(k)) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v, path) for v in obj]
        if isinstance(obj, float) and not np.isfinite(obj):
            found.setdefault(path or "(root)", set()).add("NaN" if obj != obj else ("inf" if obj > 0 else "-inf"))
            return None
        return obj

    out = walk(to_jsonable(data), "")
    return out, {k: ", ".join(sorted(v)) for k, v in sorted(found.items())}


#: Key of a results document that records which values were NaN/inf (written as ``null``).
NON_FINITE_KEY = "null_values"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as strict JSON to ``path`` atomically (:func:`snnjax.rundir.atomic_write`).

    NaN and ±inf become ``null``; when ``data`` is a dict, the key
    ``"null_values"`` then maps each affected entry to the values it held
    (e.g. ``{"metrics/final_accuracy/per_seed": "NaN"}``).
    """
    from .rundir import atomic_write

    doc, replaced = strict_json(data)
    if replaced and isinstance(doc, dict):
        doc[NON_FINITE_KEY] = {**(doc.get(NON_FINITE_KEY) or {}), **replaced}
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


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


#: Entries of ``versions`` that must agree between the parts of a merge (unless ``allow_mixed``).
MERGE_VERSION_KEYS = ("snnjax", "jax", "jaxlib", "numpy", "backend")


def _check_part(doc: Mapping[str, Any], name: str) -> list[int]:
    """The seed ids of one part of a merge, after checking that the part is self-consistent."""
    if not isinstance(doc.get("metrics"), Mapping) or not doc["metrics"]:
        raise MergeError(f"{name}: its results.json has no metrics; it is damaged or not from snnjax")
    try:
        ids = seed_ids(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise MergeError(f"{name}: its results.json has no valid 'seeds'/'first_seed'/'seed_ids' ({exc}); "
                         f"it is damaged") from exc
    if "seeds" in doc and int(doc["seeds"]) != len(ids):
        raise MergeError(f"{name}: 'seeds' is {doc['seeds']} but it lists {len(ids)} seed ids; it is damaged")
    for metric, m in doc["metrics"].items():
        if not isinstance(m, Mapping) or not isinstance(m.get("per_seed"), list):
            raise MergeError(f"{name}: metric {metric!r} has no 'per_seed' values, so its seeds cannot be joined "
                             f"with others (was it written by an old snnjax, or edited?)")
        if len(m["per_seed"]) != len(ids):
            raise MergeError(f"{name}: metric {metric!r} has {len(m['per_seed'])} per-seed rows but the run has "
                             f"{len(ids)} seed(s); the file is inconsistent (damaged or edited)")
    return ids


def _merged_versions(docs: Sequence[Mapping[str, Any]], names: Sequence[str], allow_mixed: bool) -> dict[str, Any]:
    """The versions of a merged document: the common ones, or a refusal when they differ."""
    all_versions = [dict(d.get("versions") or {}) for d in docs]
    keys = sorted(set().union(*all_versions))
    mixed = {k: [v.get(k) for v in all_versions] for k in keys if len({v.get(k) for v in all_versions}) > 1}
    decisive = {k: vals for k, vals in mixed.items() if k in MERGE_VERSION_KEYS}
    if decisive and not allow_mixed:
        detail = "; ".join(f"{k}: " + ", ".join(f"{v} ({n})" for v, n in zip(vals, names)) for k, vals in decisive.items())
        raise MergeError(f"the runs were made with different versions or backends ({detail}); their numbers may "
                         f"not be comparable. Merge runs of one setup, or pass --allow-mixed (every part's versions "
                         f"are then kept under merged_from)")
    out: dict[str, Any] = {k: ("mixed" if k in mixed else all_versions[0].get(k)) for k in keys}
    if mixed:
        out["mixed"] = sorted(mixed)
    return out


def merge_results(docs: Sequence[Mapping[str, Any]], names: Sequence[str], *, allow_mixed: bool = False) -> dict[str, Any]:
    """One results document from runs of the same experiment and config on disjoint seeds.

    The runs' per-seed values are joined in seed order and mean ± std are
    computed again over all of them, so the merged document reads as one run
    over every seed (e.g. seeds 0–15 and 16–31 run as two processes with
    ``--first-seed``). ``extra`` keeps the entries on which all parts agree;
    each part's whole ``extra``, wall time and versions are kept under
    ``merged_from``; ``wall_time_s`` is the sum of the parts'.

    Parts made with different snnjax/JAX/jaxlib/NumPy versions or backends are
    refused unless ``allow_mixed``; then ``versions`` says ``"mixed"`` for the
    entries that differ (listed under ``versions["mixed"]``).

    Raises:
        MergeError: fewer than two documents, different experiments or configs,
            an interrupted run, overlapping seeds, different metrics or x values,
            different versions (without ``allow_mixed``), or a part whose seeds
            disagree with its per-seed values.
    """
    if len(docs) < 2:
        raise MergeError("give at least two run directories to merge")
    ids = [_check_part(d, n) for d, n in zip(docs, names)]
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
    merged_versions = _merged_versions(docs, names, allow_mixed)
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
        "versions": merged_versions,
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
