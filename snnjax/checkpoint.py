"""Checkpoints of a run, written after each chunk of work, and resuming from them.

An experiment loops in Python over *chunks* (e.g. rounds of 100 training
images), each chunk one jitted program vmapped over the seeds. After each chunk
it hands its state pytree (weights, traces, PRNG keys, counters, ...) to the
run's :class:`Checkpointer`, which writes it to ``OUT/checkpoint.npz``; ``snnjax
run --resume OUT`` rebuilds the same run and continues after the last chunk
written. With the two helpers of this module an experiment's loop reads::

    from snnjax.checkpoint import resume_or, save_chunk

    start, state, partial = resume_or(ctx, init_state)   # (0, init_state, None) on a fresh run
    for chunk in range(start, n_chunks):
        state, metrics = step(state, chunk)
        ctx.partial = RunResult(...)                      # everything finished so far
        save_chunk(ctx, chunk + 1, state)

``chunk + 1`` is the number of chunks finished, so a resumed loop starts at the
first chunk not yet done. ``partial`` is the :class:`~snnjax.experiment.RunResult`
saved with the checkpoint (``None`` on a fresh run): rebuild the Python-side
accumulators (e.g. the learning curve so far) from ``partial.metrics``. For a
resumed run to equal an uninterrupted one exactly, every random draw of a chunk
must come from the state (keys carried and split in the state pytree, or
``fold_in(key, chunk)``), never from Python-side randomness.

The file is a single ``.npz`` written atomically (a temporary file in the same
directory, renamed into place with :func:`os.replace`): a crash or ``kill -9``
leaves either the previous checkpoint or the new one, never half of one. It
holds every leaf of the state (typed PRNG keys as their raw ``uint32`` data,
rewrapped on load), the partial metrics, and JSON metadata: the experiment
name, its resolved config, the seed count, the chunk index, the state's tree
structure (tree definition and every leaf's path, shape and dtype), the snnjax
version and a SHA-256 checksum of all of it. Loading checks each of these and
raises :class:`~snnjax.errors.CheckpointError` naming the field that differs
and what to do.

``Checkpointer(out_dir, every=N)`` writes every N-th chunk only (``snnjax run
--checkpoint-every N``); the latest state is kept in memory and written by
:meth:`Checkpointer.flush`, which the CLI calls on Ctrl-C, so an interrupted run
always leaves its last finished chunk on disk. A ``kill -9`` loses at most the
``N - 1`` chunks since the last write.

Multi-host runs: every leaf must be fully addressable from the writing
process (gather the state, or write from process 0 only).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .errors import CheckpointError

#: Name of the checkpoint file inside a run's output directory.
FILENAME = "checkpoint.npz"
#: Version of the file layout (bumped when it changes incompatibly).
FORMAT = 1
_META = "__meta__"

__all__ = ["FILENAME", "Checkpointer", "PhaseStore", "describe", "resume_or", "save_chunk", "tree_signature"]


# --------------------------------------------------------------------------- helpers


def _snnjax_version() -> str:
    try:
        from importlib.metadata import version

        return version("snnjax")
    except Exception:  # noqa: BLE001
        from . import __version__

        return __version__


def _canonical(obj: Any) -> Any:
    """Config values as plain JSON (tuples → lists, numpy scalars → Python)."""
    from .results import to_jsonable

    return json.loads(json.dumps(to_jsonable(obj), sort_keys=True, allow_nan=True))


def _is_key(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _normalise_treedef(treedef: Any) -> str:
    # Static fields may print as ``<function f at 0x7f...>``: drop the address so
    # the same structure has the same signature in every process.
    return re.sub(r" at 0x[0-9a-fA-F]+", "", str(treedef))


def tree_signature(tree: Any) -> dict[str, Any]:
    """The structure of a pytree: its tree definition and each leaf's path, shape and dtype.

    Typed PRNG keys have dtype ``key<impl>`` and the shape of the key array
    (without the trailing key-data axis).
    """
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    leaves = []
    for path, leaf in leaves_with_path:
        if _is_key(leaf):
            shape, dtype = tuple(leaf.shape), str(leaf.dtype)
        else:
            arr = np.asarray(leaf) if not hasattr(leaf, "dtype") else leaf
            shape, dtype = tuple(arr.shape), str(np.dtype(arr.dtype))
        leaves.append({"path": jax.tree_util.keystr(path), "shape": list(shape), "dtype": dtype})
    return {"treedef": _normalise_treedef(treedef), "leaves": leaves}


def _to_storable(leaf: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """A host numpy array to store, and how to turn it back into the leaf."""
    info: dict[str, Any] = {}
    if _is_key(leaf):
        info["key_impl"] = str(jax.random.key_impl(leaf))
        arr = np.asarray(jax.device_get(jax.random.key_data(leaf)))
    else:
        arr = np.asarray(jax.device_get(leaf))
    if arr.dtype.isbuiltin != 1:  # e.g. bfloat16: store the raw bits
        info["view"] = str(arr.dtype)
        arr = arr.view(f"u{arr.dtype.itemsize}")
    return arr, info


def _hash(arrays: list[tuple[str, np.ndarray]], meta: Mapping[str, Any]) -> str:
    h = hashlib.sha256()
    for name, arr in arrays:
        h.update(name.encode())
        h.update(str(arr.dtype.str).encode())
        h.update(repr(tuple(arr.shape)).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    body = {k: v for k, v in meta.items() if k != "checksum"}
    h.update(json.dumps(body, sort_keys=True, allow_nan=True).encode())
    return h.hexdigest()


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a checkpoint file: its metadata and arrays (checksum checked)."""
    what = f"checkpoint {str(path)!r}"
    fix = ("Delete it to start the run afresh, or resume from a copy of an intact checkpoint.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, zlib.error) as exc:
        raise CheckpointError(f"{what} is corrupt or truncated ({type(exc).__name__}: {exc}). {fix}") from exc
    if _META not in arrays:
        raise CheckpointError(f"{what} has no metadata: it is not a snnjax checkpoint, or it is damaged. {fix}")
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{what} has unreadable metadata ({exc}). {fix}") from exc
    if not isinstance(meta, dict) or "checksum" not in meta or "arrays" not in meta:
        raise CheckpointError(f"{what} has incomplete metadata. {fix}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{what} has file format {meta.get('format')!r}; this snnjax reads format {FORMAT}. "
            f"Resume it with the snnjax version that wrote it ({meta.get('snnjax', '?')}), or start afresh."
        )
    names = list(meta["arrays"])
    if sorted(names) != sorted(arrays):
        raise CheckpointError(f"{what} does not hold the arrays its metadata lists. {fix}")
    checksum = _hash([(n, arrays[n]) for n in names], meta)
    if checksum != meta["checksum"]:
        raise CheckpointError(f"{what} fails its checksum (stored {meta['checksum'][:12]}…, "
                              f"computed {checksum[:12]}…): its content was altered or damaged. {fix}")
    return meta, arrays


def describe(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint file (verified), e.g. ``describe(p)["chunk"]``.

    Raises:
        CheckpointError: the file is corrupt, truncated or altered.
        FileNotFoundError: there is no such file.
    """
    meta, _ = _read(Path(path))
    return meta


def _diff_config(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(stored) | set(current)):
        if key not in current:
            out.append(f"{key!r} is {stored[key]!r} in the checkpoint but not a key of this run")
        elif key not in stored:
            out.append(f"{key!r} is {current[key]!r} in this run but absent from the checkpoint")
        elif stored[key] != current[key]:
            out.append(f"{key!r} is {stored[key]!r} in the checkpoint but {current[key]!r} in this run")
    return out


# --------------------------------------------------------------------------- the checkpointer


class Checkpointer:
    """Writes a run's state after each chunk and restores it on resume.

    Args:
        out_dir: the run's output directory; the file is ``out_dir/checkpoint.npz``.
        every: write every ``every``-th chunk (chunk indices divisible by it);
            the others are kept in memory until the next write or :meth:`flush`.
        experiment: the experiment's name, stored with each checkpoint.
        config: the run's resolved config, stored with each checkpoint.
        n_seeds: the run's seed count, stored with each checkpoint.
        resume: whether :func:`resume_or` should restore from an existing
            checkpoint (``snnjax run --resume``); a fresh run overwrites it.

    Attributes:
        last_written: chunk index of the last checkpoint written by this
            object (``None`` before the first).
        meta: metadata of the checkpoint restored by :meth:`load` (its
            ``"extra"`` entry holds the ``extra_meta`` given to :meth:`save`).
    """

    def __init__(self, out_dir: str | Path, every: int = 1, *, experiment: str | None = None,
                 config: Mapping[str, Any] | None = None, n_seeds: int | None = None, resume: bool = False):
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            from .errors import ConfigError

            raise ConfigError(f"--checkpoint-every must be a positive integer, got {every!r}")
        self.out_dir = Path(out_dir)
        self.every = every
        self.experiment = experiment
        self.config = dict(config) if config is not None else None
        self.n_seeds = n_seeds
        self.resume = resume
        self.last_written: int | None = None
        self.meta: dict[str, Any] | None = None
        self._pending: tuple[int, Any, Any, Any] | None = None

    @property
    def path(self) -> Path:
        """Where the checkpoint file lives."""
        return self.out_dir / FILENAME

    def exists(self) -> bool:
        """Whether a checkpoint file is on disk."""
        return self.path.is_file()

    # -- saving -------------------------------------------------------------

    def save(self, chunk_index: int, state: Any, partial: Any = None, extra_meta: Mapping[str, Any] | None = None,
             *, force: bool = False) -> Path | None:
        """Record the state after ``chunk_index`` finished chunks.

        Writes the file now when ``chunk_index`` is a multiple of ``every``
        (or ``force``); otherwise keeps it for :meth:`flush`.

        Args:
            chunk_index: number of chunks finished (the loop's ``chunk + 1``).
            state: the state pytree (arrays, typed or raw PRNG keys, scalars).
            partial: the :class:`~snnjax.experiment.RunResult` finished so far.
            extra_meta: small JSON-serialisable data to keep with the checkpoint.

        Returns:
            The path written, or ``None`` when the write was deferred.
        """
        # numpy leaves and metrics are mutable: keep a copy of what they are now
        state = jax.tree_util.tree_map(lambda x: np.array(x) if isinstance(x, np.ndarray) else x, state)
        if partial is not None:
            from dataclasses import replace

            partial = replace(partial, metrics={k: np.array(v) if isinstance(v, np.ndarray) else v
                                                for k, v in partial.metrics.items()})
        self._pending = (int(chunk_index), state, partial, dict(extra_meta or {}))
        if force or chunk_index % self.every == 0:
            return self.flush()
        return None

    def flush(self) -> Path | None:
        """Write the latest state given to :meth:`save` if it is not on disk yet."""
        if self._pending is None:
            return None
        chunk_index, state, partial, extra = self._pending
        if self.last_written == chunk_index:
            self._pending = None
            return self.path
        self._write(chunk_index, state, partial, extra)
        self.last_written = chunk_index
        self._pending = None
        return self.path

    def _write(self, chunk_index: int, state: Any, partial: Any, extra: Mapping[str, Any]) -> None:
        from .results import to_jsonable

        leaves = jax.tree_util.tree_leaves(state)
        arrays: list[tuple[str, np.ndarray]] = []
        leaf_info = []
        for i, leaf in enumerate(leaves):
            arr, info = _to_storable(leaf)
            arrays.append((f"leaf_{i:05d}", arr))
            leaf_info.append(info)
        partial_doc = None
        if partial is not None:
            names = list(partial.metrics)
            for j, name in enumerate(names):
                arrays.append((f"metric_{j:05d}", np.asarray(jax.device_get(partial.metrics[name]))))
            partial_doc = {"metrics": names, "curves_x": to_jsonable(partial.curves_x),
                           "extra": to_jsonable(partial.extra), "figures": [str(f) for f in partial.figures]}
        meta: dict[str, Any] = {
            "format": FORMAT,
            "snnjax": _snnjax_version(),
            "experiment": self.experiment,
            "config": _canonical(self.config) if self.config is not None else None,
            "n_seeds": self.n_seeds,
            "chunk": int(chunk_index),
            "structure": tree_signature(state),
            "leaf_info": leaf_info,
            "partial": partial_doc,
            "extra": _canonical(extra),
            "arrays": [name for name, _ in arrays],
        }
        meta["checksum"] = _hash(arrays, meta)
        payload = {name: arr for name, arr in arrays}
        payload[_META] = np.frombuffer(json.dumps(meta, sort_keys=True, allow_nan=True).encode("utf-8"), dtype=np.uint8)

        from .rundir import atomic_write

        atomic_write(self.path, lambda fh: np.savez(fh, **payload))

    # -- loading ------------------------------------------------------------

    def peek(self, experiment: str | None = None, config: Mapping[str, Any] | None = None,
             n_seeds: int | None = None) -> dict[str, Any] | None:
        """The verified metadata of the checkpoint on disk, or ``None`` when there is none.

        Checks the file (checksum) and that it belongs to this experiment,
        config and seed count (defaults: the constructor's), without needing
        the state template: the CLI calls it before anything is compiled.

        Raises:
            CheckpointError: as :meth:`load`, except for the state structure.
        """
        if not self.path.is_file():
            return None
        meta, _ = _read(self.path)
        self._check_identity(meta, experiment, config, n_seeds)
        return meta

    def _check_identity(self, meta: Mapping[str, Any], experiment: str | None, config: Mapping[str, Any] | None,
                        n_seeds: int | None) -> None:
        experiment = experiment if experiment is not None else self.experiment
        config = config if config is not None else self.config
        n_seeds = n_seeds if n_seeds is not None else self.n_seeds
        where = f"checkpoint {str(self.path)!r}"
        fresh = (f"Resume it with the run's original settings (`snnjax run --resume {self.out_dir}` reads them "
                 f"from its config.json), or start a new run with a different --out directory.")
        if experiment is not None and meta.get("experiment") != experiment:
            raise CheckpointError(f"{where} field 'experiment' differs: it was written by experiment "
                                  f"{meta.get('experiment')!r}, this run is {experiment!r}. {fresh}")
        if n_seeds is not None and meta.get("n_seeds") != n_seeds:
            raise CheckpointError(f"{where} field 'n_seeds' differs: it holds {meta.get('n_seeds')} seed(s), "
                                  f"this run has {n_seeds} (--seeds). {fresh}")
        if config is not None and meta.get("config") is not None:
            stored, current = meta["config"], _canonical(config)
            diffs = _diff_config(stored, current)
            if diffs:
                same_keys_agree = all(stored[k] == current[k] for k in set(stored) & set(current))
                hint = (f"Only the set of config keys differs, so the code changed since the checkpoint was "
                        f"written, not the run's settings: resume it with the snnjax and plugins that wrote it "
                        f"(e.g. a checkout of that commit), or start a new run with a different --out directory."
                        if same_keys_agree else fresh)
                raise CheckpointError(f"{where} field 'config' differs: " + "; ".join(diffs) + f". {hint}")

    def load(self, template: Any, experiment: str | None = None, config: Mapping[str, Any] | None = None,
             n_seeds: int | None = None) -> tuple[int, Any, Any] | None:
        """Restore the checkpoint, checking that it belongs to this run.

        Args:
            template: a pytree with the structure, shapes and dtypes of the
                saved state (e.g. the initial state); typed-key leaves come
                back as typed keys, and leaves are placed with the template
                leaf's sharding.
            experiment: expected experiment name (default: the one given to
                the constructor).
            config: expected resolved config (default: the constructor's).
            n_seeds: expected seed count (default: the constructor's).

        Returns:
            ``(chunk_index, state, partial)``, or ``None`` when there is no
            checkpoint file. ``partial`` is a :class:`~snnjax.experiment.RunResult`
            or ``None``.

        Raises:
            CheckpointError: the file is corrupt, truncated or altered, or was
                written by a different experiment, config, seed count or
                state structure.
        """
        from .experiment import RunResult

        if not self.path.is_file():
            return None
        meta, arrays = _read(self.path)
        self._check_identity(meta, experiment, config, n_seeds)
        where = f"checkpoint {str(self.path)!r}"

        expected = tree_signature(template)
        stored = meta["structure"]
        if len(stored["leaves"]) != len(expected["leaves"]):
            raise CheckpointError(
                f"{where} field 'structure' differs: it holds {len(stored['leaves'])} state leaves, this run's "
                f"state has {len(expected['leaves'])}. The experiment's state changed since the checkpoint was "
                f"written (another snnjax or plugin version?): resume it with the code that wrote it, or start a new run.")
        for i, (s, e) in enumerate(zip(stored["leaves"], expected["leaves"], strict=True)):
            for field in ("path", "shape", "dtype"):
                if s[field] != e[field]:
                    raise CheckpointError(
                        f"{where} field 'structure' differs at state leaf {i} {e['path'] or '(root)'}: {field} is "
                        f"{s[field]!r} in the checkpoint but {e[field]!r} in this run. The experiment's state "
                        f"changed since the checkpoint was written: resume it with the code that wrote it, or start a "
                        f"new run.")
        if stored["treedef"] != expected["treedef"]:
            raise CheckpointError(
                f"{where} field 'structure' differs: tree {stored['treedef']} in the checkpoint, "
                f"{expected['treedef']} in this run. The experiment's state changed since the checkpoint was "
                f"written: resume it with the code that wrote it, or start a new run.")
        if meta.get("snnjax") != _snnjax_version():
            warnings.warn(f"{where} was written by snnjax {meta.get('snnjax')}, this is "
                          f"{_snnjax_version()}; resuming anyway", stacklevel=2)

        tmpl_leaves, treedef = jax.tree_util.tree_flatten(template)
        leaves = []
        for i, (tmpl, info) in enumerate(zip(tmpl_leaves, meta["leaf_info"], strict=True)):
            arr = arrays[f"leaf_{i:05d}"]
            if "view" in info:
                arr = arr.view(jnp.dtype(info["view"]))
            if "key_impl" in info:
                leaf = jax.random.wrap_key_data(jnp.asarray(arr), impl=info["key_impl"])
            elif isinstance(tmpl, (bool, int, float, complex)) and not hasattr(tmpl, "dtype"):
                leaf = type(tmpl)(arr.item())
            elif isinstance(tmpl, np.ndarray) or np.isscalar(tmpl):
                leaf = np.asarray(arr, dtype=tmpl.dtype) if hasattr(tmpl, "dtype") else arr
            else:
                leaf = jnp.asarray(arr)
            sharding = getattr(tmpl, "sharding", None)
            if sharding is not None and isinstance(leaf, jax.Array):
                try:
                    leaf = jax.device_put(leaf, sharding)
                except Exception:  # noqa: BLE001 - placement is an optimisation only
                    pass
            leaves.append(leaf)
        state = jax.tree_util.tree_unflatten(treedef, leaves)

        partial = None
        if meta.get("partial") is not None:
            p = meta["partial"]
            metrics = {name: arrays[f"metric_{j:05d}"] for j, name in enumerate(p["metrics"])}
            partial = RunResult(metrics=metrics, curves_x=dict(p.get("curves_x") or {}),
                                extra=dict(p.get("extra") or {}), figures=list(p.get("figures") or []))
        self.meta = meta
        self.last_written = int(meta["chunk"])
        return int(meta["chunk"]), state, partial


# --------------------------------------------------------------------------- experiment helpers


def resume_or(ctx: Any, template_state: Any) -> tuple[int, Any, Any]:
    """Where an experiment's chunk loop starts: ``(start_chunk, state, partial)``.

    On a fresh run (or without a checkpointer): ``(0, template_state, None)``.
    On ``snnjax run --resume``: the restored checkpoint, after checking that it
    belongs to this run (experiment, config, seeds, state structure); also
    sets ``ctx.partial`` so that Ctrl-C right away keeps the finished part.
    A resume of a run that wrote no checkpoint yet starts from chunk 0.

    Raises:
        CheckpointError: the checkpoint is damaged or belongs to another run.
    """
    ckpt = getattr(ctx, "checkpoint", None)
    if ckpt is None or not getattr(ckpt, "resume", False):
        return 0, template_state, None
    loaded = ckpt.load(template_state, ckpt.experiment, ckpt.config if ckpt.config is not None else ctx.config,
                       ckpt.n_seeds if ckpt.n_seeds is not None else ctx.n_seeds)
    if loaded is None:
        return 0, template_state, None
    chunk, state, partial = loaded
    if partial is not None:
        ctx.partial = partial
    return chunk, state, partial


def save_chunk(ctx: Any, chunk_index: int, state: Any, extra_meta: Mapping[str, Any] | None = None) -> Path | None:
    """Checkpoint ``state`` after ``chunk_index`` finished chunks, with ``ctx.partial``.

    A no-op when the run has no checkpointer (e.g. an experiment called from
    Python with a bare :class:`~snnjax.experiment.RunContext`).
    """
    ckpt = getattr(ctx, "checkpoint", None)
    if ckpt is None:
        return None
    return ckpt.save(chunk_index, state, getattr(ctx, "partial", None), extra_meta)


class PhaseStore:
    """Finished *phases* of a run, kept in its checkpoint: for experiments whose steps differ in shape.

    :func:`resume_or` / :func:`save_chunk` suit a loop over chunks of one state pytree. A run made
    of phases with different outputs (train features, then a decision layer, then estimate
    ranges, ...) instead names each phase and keeps its output::

        store = PhaseStore(ctx)
        state = store.get("task1/features", template)      # None unless a resumed run finished it
        if state is None:
            state = train_features(...)
            store.put("task1/features", state)              # checkpointed now (every --checkpoint-every)

    The checkpoint's state is a flat ``{"phase/leaf-index": array}`` dict of every finished phase;
    ``get`` rebuilds a phase's output with the tree structure of ``template`` (any pytree with
    that structure, e.g. the initial state; its leaf values are not used). ``put(..., drop=p)``
    forgets the phases named in ``p`` (e.g. the previous epoch's progress). The chunk count of the
    checkpoint is the number of ``put`` calls so far. For a resumed run to equal an uninterrupted
    one, a phase's randomness must come from keys fixed by the phase (``fold_in``), not from
    Python-side randomness.
    """

    _KEYS = "phase_store_keys"

    def __init__(self, ctx: Any):
        self._ctx = ctx
        self._flat: dict[str, Any] = {}
        self._count = 0
        ckpt = getattr(ctx, "checkpoint", None)
        if ckpt is None or not getattr(ckpt, "resume", False) or not ckpt.exists():
            return
        meta = describe(ckpt.path)
        names = (meta.get("extra") or {}).get(self._KEYS)
        if names is None:
            raise CheckpointError(f"checkpoint {str(ckpt.path)!r} was not written by a phase-based run of this "
                                  f"experiment; start a new run")
        leaves = meta["structure"]["leaves"]
        if len(leaves) != len(names):
            raise CheckpointError(f"checkpoint {str(ckpt.path)!r} field 'structure' differs from its phase list; "
                                  f"start a new run")
        template = {}
        for name, leaf, info in zip(sorted(names), leaves, meta["leaf_info"], strict=True):
            if "key_impl" in info:
                raise CheckpointError("PhaseStore keeps raw arrays only: store PRNG keys as key data")
            template[name] = np.zeros(leaf["shape"], dtype=np.dtype(leaf["dtype"]))
        loaded = ckpt.load(template, ckpt.experiment, ckpt.config if ckpt.config is not None else ctx.config,
                           ckpt.n_seeds if ckpt.n_seeds is not None else ctx.n_seeds)
        if loaded is not None:
            self._count, self._flat, partial = loaded
            if partial is not None:
                ctx.partial = partial

    def get(self, name: str, template: Any) -> Any | None:
        """The stored output of phase ``name`` shaped like ``template``, or ``None`` if not finished."""
        prefix = f"{name}/"
        if not any(k.startswith(prefix) for k in self._flat):
            return None
        leaves, treedef = jax.tree_util.tree_flatten(template)
        try:
            stored = [self._flat[f"{prefix}{i:05d}"] for i in range(len(leaves))]
        except KeyError:
            stored = None
        if stored is None or sum(k.startswith(prefix) for k in self._flat) != len(leaves):
            raise CheckpointError(f"the checkpoint's phase {name!r} has another structure than this run's; "
                                  f"start a new run")
        # numpy leaves stay numpy (float64 metrics keep their precision), the rest become jax arrays
        return jax.tree_util.tree_unflatten(treedef, [np.asarray(s, dtype=getattr(t, "dtype", None))
                                                      if isinstance(t, (np.ndarray, np.generic)) else jnp.asarray(s)
                                                      for s, t in zip(stored, leaves, strict=True)])

    def put(self, name: str, tree: Any, drop: tuple[str, ...] = ()) -> None:
        """Record phase ``name``'s output (and forget the phases in ``drop``); checkpoint it."""
        gone = tuple(f"{d}/" for d in (*drop, name))
        self._flat = {k: v for k, v in self._flat.items() if not k.startswith(gone)}
        for i, leaf in enumerate(jax.tree_util.tree_leaves(tree)):
            if _is_key(leaf):
                leaf = jax.random.key_data(leaf)
            self._flat[f"{name}/{i:05d}"] = leaf
        self._count += 1
        save_chunk(self._ctx, self._count, self._flat, {self._KEYS: sorted(self._flat)})
