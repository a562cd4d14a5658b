"""The data layer: image datasets as host-side numpy arrays.

A **dataset source** (:class:`DatasetSource`) is a plugin (hook
``snnjax_datasets``) that loads one split of an image dataset as
``(images uint8 [N, H, W], labels int32 [N])``; the built-in ones are 28×28.
:func:`load` looks a source up by name, then filters, shuffles and truncates
its split deterministically and returns a :class:`Dataset`.

Data preparation is plain numpy on the host: shuffling uses
``numpy.random.default_rng(seed)``; JAX PRNG keys are reserved for the
simulation itself.

This module is the core's part: the dataset contract, the loader that
dispatches through the registry, provenance (:func:`describe`,
:func:`idx_provenance`, :func:`recording_provenance`) and quick environment
probes (:func:`tensorflow_available`, :func:`network_reachable`) that decide,
in a few seconds at most, whether a download may even be attempted (looked up
at call time, so tests can replace them with
``monkeypatch.setattr(snnjax.data, ...)``). The concrete readers of IDX files
and of prepared tensorflow-datasets data live beside the dataset plugins, in
:mod:`snnjax_plugins.dataset_readers`; their old names here still resolve
(:func:`__getattr__`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from .errors import ConfigError, DataError, InputError

if TYPE_CHECKING:
    from .plugins import Registry

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")

#: Name of the built-in dataset that works offline, without any preparation.
EMBEDDED_DATASET = "mnist-embedded"


# ---------------------------------------------------------------------------
# The source protocol and the dataset container
# ---------------------------------------------------------------------------


@runtime_checkable
class DatasetSource(Protocol):
    """What a dataset plugin's factory returns.

    Attributes:
        name: the registered name, e.g. ``"mnist"``.
        description: one line for ``snnjax data``.
    """

    name: str
    description: str

    def load(self, split: Split, *, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Load one split: ``(images uint8 [N, H, W], labels int32 [N])``.

        May return a :class:`LoadedSplit` (a 2-tuple that also records where
        the arrays came from). Raises :class:`~snnjax.errors.DataUnavailableError`
        when the data is not on this machine, :class:`~snnjax.errors.DataError`
        when it is unreadable.
        """
        ...

    def locate(self, data_dir: str | None = None) -> str:
        """One line: where :meth:`load` would read from here, or why it cannot.

        Must be fast (no download; any network probe bounded by ~3 s).
        """
        ...


class LoadedSplit(tuple):
    """``(images, labels)`` plus the attribute ``origin``: where they were read from.

    Unpacks like a plain 2-tuple: ``images, labels = source.load("train")``.
    """

    origin: str
    #: structured provenance (e.g. ``{"kind": "idx", "files": [{"path", "sha256"}, ...]}``), recorded in results.json
    provenance: dict[str, Any]

    def __new__(cls, images: np.ndarray, labels: np.ndarray, origin: str = "",
                provenance: Mapping[str, Any] | None = None) -> LoadedSplit:
        obj = super().__new__(cls, (images, labels))
        obj.origin = origin
        obj.provenance = dict(provenance or {})
        return obj


@dataclass(frozen=True, eq=False)
class Dataset:
    """One loaded split.

    Attributes:
        images: uint8 numpy array ``[N, H, W]`` (28×28 for the built-in sources),
            pixel intensities 0–255.
        labels: int32 numpy array ``[N]``, the source's raw labels.
        name: the dataset's registered name.
        source: where the arrays came from (file, directory or package).
    """

    images: np.ndarray
    labels: np.ndarray
    name: str
    source: str
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def classes(self) -> list[int]:
        """The distinct labels present, ascending."""
        return [int(c) for c in np.unique(self.labels)]


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def _default_registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from .plugins import get_registry

    return get_registry()


def load(
    name: str,
    split: Split,
    *,
    classes: Sequence[int] | None = None,
    limit: int | None = None,
    limit_per_class: int | None = None,
    shuffle_seed: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    registry: Registry | None = None,
    source_params: Mapping[str, Any] | None = None,
) -> Dataset:
    """Load split ``split`` of dataset ``name`` and select from it.

    Steps, in this order:

    1. the source registered as ``name`` (kind ``"dataset"``) is built with
       ``source_params`` (e.g. ``{"transpose": False}``) and loads the split;
    2. ``classes``: keep only examples whose label is in ``classes``, in the
       order they appear in the data; labels are not remapped;
    3. ``shuffle_seed``: permute with ``numpy.random.default_rng(shuffle_seed)``
       (``None``: keep the source's order);
    4. ``limit_per_class``: keep the first ``k`` examples of each class;
    5. ``limit``: keep the first ``limit`` examples (all of them if fewer).

    Raises:
        PluginError: unknown ``name`` (with a did-you-mean suggestion).
        ConfigError: bad ``split``, ``limit``/``limit_per_class`` < 1, or
            ``classes`` empty or naming labels the dataset does not have.
        DataUnavailableError: the dataset is not available on this machine.
        DataError: the data is unreadable or the selection is empty.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    _check_positive("limit", limit)
    _check_positive("limit_per_class", limit_per_class)
    reg = _default_registry(registry)
    reg.info("dataset", name)  # an unknown name raises PluginError with a did-you-mean hint
    source = reg.create("dataset", name, **dict(source_params or {}))
    dir_arg = os.fspath(data_dir) if data_dir is not None else None
    result = source.load(split, data_dir=dir_arg)
    images, labels = _check_source_arrays(name, *result)
    origin = getattr(result, "origin", "") or source.locate(dir_arg)
    provenance = {"dataset": name, "split": split, **(getattr(result, "provenance", None) or {"origin": origin})}
    for log in _PROVENANCE_LOGS:
        if provenance not in log:
            log.append(provenance)

    if classes is not None:
        images, labels = _select_classes(name, images, labels, classes)
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(labels.shape[0])
        images, labels = images[order], labels[order]
    if limit_per_class is not None:
        keep = _first_per_class(labels, limit_per_class)
        images, labels = images[keep], labels[keep]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if labels.shape[0] == 0:
        raise DataError(f"dataset {name!r} split {split!r}: the selection is empty")
    return Dataset(images=np.ascontiguousarray(images), labels=np.ascontiguousarray(labels), name=name, source=origin,
                   provenance=provenance)


_PROVENANCE_LOGS: list[list[dict[str, Any]]] = []


@contextlib.contextmanager
def recording_provenance() -> Iterator[list[dict[str, Any]]]:
    """Collect where every :func:`load` inside the block read its data from.

    Yields a list that fills with one dict per distinct (dataset, split) read:
    ``{"dataset", "split", "kind": "embedded" | "idx" | "tfds", ...}`` with the
    file paths and SHA-256 sums (IDX, embedded) or the tfds name, version and
    directory. ``snnjax run`` stores it as ``results.json["data"]``.
    """
    log: list[dict[str, Any]] = []
    _PROVENANCE_LOGS.append(log)
    try:
        yield log
    finally:
        _PROVENANCE_LOGS.remove(log)


_DIGESTS: dict[tuple[str, int, int], dict[str, str]] = {}


def file_digests(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{"sha256", "md5"}`` hex digests of a file (cached per path, size and mtime)."""
    import hashlib

    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
                md5.update(block)
        _DIGESTS[key] = {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}
    return _DIGESTS[key]


#: MD5 sums of the published ``.gz`` IDX files → (dataset, file name): files that are
#: known to belong to one dataset are refused when another dataset is asked for.
KNOWN_IDX_MD5: dict[str, tuple[str, str]] = {
    "f68b3c2dcbeaaa9fbdd348bbdeb94873": ("mnist", "train-images-idx3-ubyte.gz"),
    "d53e105ee54ea40749a09fcbcd1e9432": ("mnist", "train-labels-idx1-ubyte.gz"),
    "9fb629c4189551a2d022fa330f9573f3": ("mnist", "t10k-images-idx3-ubyte.gz"),
    "ec29112dd5afa0611ce80d1b7f02629c": ("mnist", "t10k-labels-idx1-ubyte.gz"),
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d": ("fashion_mnist", "train-images-idx3-ubyte.gz"),
    "25c81989df183df01b3e8a0aad5dffbe": ("fashion_mnist", "train-labels-idx1-ubyte.gz"),
    "bef4ecab320f06d8554ea6380940ec79": ("fashion_mnist", "t10k-images-idx3-ubyte.gz"),
    "bb300cfdad3c16e7a12a480ee83cd310": ("fashion_mnist", "t10k-labels-idx1-ubyte.gz"),
}


def idx_provenance(name: str, paths: Sequence[Path]) -> dict[str, Any]:
    """Provenance of IDX files read for dataset ``name``; refuses files known to belong to another dataset.

    Raises:
        DataError: a file's checksum is that of a published file of another dataset
            (e.g. MNIST digits found where ``fashion_mnist`` was asked for).
    """
    files = []
    for path in paths:
        digests = file_digests(path)
        known = KNOWN_IDX_MD5.get(digests["md5"])
        if known is not None and known[0] != name:
            raise DataError(f"{path} is the published {known[0]!r} file {known[1]} (by its checksum), not a file of "
                            f"dataset {name!r}; put the {name} IDX files in their own directory "
                            f"(e.g. DATA_DIR/{name}/) and pass that as data_dir")
        files.append({"path": str(Path(path).resolve()), "sha256": digests["sha256"],
                      **({"published": f"{known[0]}/{known[1]}"} if known else {})})
    return {"kind": "idx", "files": files}


def describe(
    registry: Registry | None = None, data_dir: str | os.PathLike[str] | None = None
) -> list[tuple[str, str, str]]:
    """``(name, description, location)`` of every registered dataset, by name.

    ``location`` is the source's :meth:`DatasetSource.locate` line; a source
    that cannot even be built is reported, not raised.
    """
    reg = _default_registry(registry)
    dir_arg = os.fspath(data_dir) if data_dir is not None else None
    rows: list[tuple[str, str, str]] = []
    for name in reg.names("dataset"):
        info = reg.info("dataset", name)
        try:
            source = info.factory()
            rows.append((name, source.description or info.doc, source.locate(dir_arg)))
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the others
            rows.append((name, info.doc, f"error: {type(exc).__name__}: {exc}"))
    return rows


def validate_images(images: Any, *, single: bool = False) -> np.ndarray:
    """Check image input and return it as a float32 numpy copy (values unchanged).

    Accepts ``[N, H, W]`` (or ``[H, W]`` when ``single=True``) arrays of a
    numeric dtype with finite intensities in ``[0, 255]`` (uint8 scale; data
    already scaled to ``[0, 1]`` passes too). Raises :class:`InputError` that
    says what is wrong and how to fix it.
    """
    arr = np.asarray(images)
    want = "[H, W] (one image)" if single else "[N, H, W] (a batch of images)"
    if arr.dtype.kind not in "biuf":
        raise InputError(
            f"images have dtype {arr.dtype}, expected a numeric array {want}; "
            f"convert with np.asarray(images, dtype=np.uint8) or np.float32"
        )
    ndim = 2 if single else 3
    if arr.ndim != ndim:
        hint = " (add a batch axis with images[None])" if arr.ndim == 2 else ""
        hint = " (drop the channel axis with images[..., 0])" if arr.ndim == ndim + 1 and arr.shape[-1] == 1 else hint
        raise InputError(f"images have shape {arr.shape}, expected {want}{hint}")
    if arr.size == 0:
        raise InputError(f"images have shape {arr.shape}: no pixels; pass at least one non-empty image")
    out = arr.astype(np.float32, copy=True)
    if not np.isfinite(out).all():
        raise InputError(
            f"images contain {int((~np.isfinite(out)).sum())} NaN/inf values; "
            f"replace them (e.g. np.nan_to_num(images)) before encoding"
        )
    if (out < 0).any():
        raise InputError(
            f"images contain negative intensities (min {float(out.min())}); "
            f"intensities must be >= 0 — undo any mean subtraction or clip with np.clip(images, 0, 255)"
        )
    if (out > 255).any():
        raise InputError(
            f"images contain intensities above 255 (max {float(out.max())}); "
            f"use uint8-scale data in [0, 255] (or [0, 1]) — rescale or clip with np.clip(images, 0, 255)"
        )
    return out


# ---------------------------------------------------------------------------
# Selection helpers
# ---------------------------------------------------------------------------


def _check_positive(what: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{what} must be a positive integer or None, got {value!r}")


def _check_source_arrays(name: str, images: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Coerce a source's output to ``(uint8 [N,H,W], int32 [N])`` or raise DataError."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(
            f"dataset {name!r} returned images {images.shape} and labels {labels.shape}; "
            f"a source must return images [N, H, W] and labels [N]"
        )
    if images.dtype != np.uint8 or labels.dtype.kind not in "iu":
        raise DataError(f"dataset {name!r} returned {images.dtype} images / {labels.dtype} labels; expected uint8 / integer")
    if labels.shape[0] == 0:
        raise DataError(f"dataset {name!r} returned no examples")
    return images, labels.astype(np.int32, copy=False)


def _select_classes(
    name: str, images: np.ndarray, labels: np.ndarray, classes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the examples whose label is in ``classes`` (data order kept, labels unchanged)."""
    wanted = list(classes)
    if not wanted:
        raise ConfigError("classes is empty; pass None for all classes or a list of labels")
    if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in wanted):
        raise ConfigError(f"classes must be integer labels, got {wanted!r}")
    present = np.unique(labels)
    missing = sorted({int(c) for c in wanted} - {int(c) for c in present})
    if missing:
        raise ConfigError(
            f"dataset {name!r} has no class {', '.join(map(str, missing))}; "
            f"its classes are {_format_classes(present)}"
        )
    mask = np.isin(labels, np.asarray(wanted))
    return images[mask], labels[mask]


def _format_classes(present: np.ndarray) -> str:
    values = [int(c) for c in present]
    if values and values == list(range(values[0], values[-1] + 1)) and len(values) > 3:
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values))


def _first_per_class(labels: np.ndarray, k: int) -> np.ndarray:
    """Indices (ascending) of the first ``k`` examples of each label."""
    counts: dict[int, int] = {}
    keep = []
    for i, label in enumerate(labels.tolist()):
        seen = counts.get(label, 0)
        if seen < k:
            keep.append(i)
            counts[label] = seen + 1
    return np.asarray(keep, dtype=np.int64)


# ---------------------------------------------------------------------------
# Environment probes (monkeypatchable)
# ---------------------------------------------------------------------------


def tensorflow_available() -> bool:
    """Whether TensorFlow is installed (checked without importing it)."""
    return importlib.util.find_spec("tensorflow") is not None


def network_reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds within ``timeout`` seconds.

    The probe (DNS lookup included) runs in a daemon thread, so this returns
    after at most ``timeout`` seconds even when name resolution hangs.
    """
    outcome: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=probe, name="snnjax-net-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


#: Names that moved to :mod:`snnjax_plugins.dataset_readers` (the built-in dataset plugins' readers).
_MOVED = frozenset({"IDX_DIR_ENV", "TFDS_FILE_FORMAT", "find_idx_split", "idx_directories", "read_idx",
                    "read_idx_split", "read_tfds_split", "tfds_prepared_path"})


def __getattr__(name: str) -> Any:
    """The readers' old names (``snnjax.data.read_idx`` …), resolved from where they live now."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module("snnjax_plugins.dataset_readers"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

