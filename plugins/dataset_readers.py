"""The concrete readers of the built-in dataset plugins (:mod:`snnjax_plugins.datasets`).

* IDX files, the original distribution format of MNIST / Fashion-MNIST / EMNIST, gzip-compressed
  or not (:func:`read_idx`, :func:`find_idx_split`, :func:`read_idx_split`), searched in
  ``data_dir`` then ``$SNNJAX_IDX_DIR`` (:data:`IDX_DIR_ENV`, :func:`idx_directories`);
* tensorflow-datasets data prepared locally in the ``array_record`` format
  (:func:`read_tfds_split`, :func:`tfds_prepared_path`), read without TensorFlow.

The core (:mod:`snnjax.data`) keeps the dataset contract (:class:`snnjax.data.DatasetSource`), the
loader that dispatches through the registry (:func:`snnjax.data.load`), the provenance records and
the environment probes (``tensorflow_available``, ``network_reachable``); it names no file format.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snnjax.data import Split
from snnjax.errors import DataError

#: Environment variable naming a directory with IDX files (see :func:`find_idx_split`).
IDX_DIR_ENV = "SNNJAX_IDX_DIR"

# ---------------------------------------------------------------------------
# IDX files (the original MNIST format)
# ---------------------------------------------------------------------------

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic number."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip file ({exc}); download it again") from exc


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a numpy array.

    Format: two zero bytes, a dtype code (0x08 = uint8, ...), the number of
    dimensions ``d``, ``d`` big-endian uint32 sizes, then the data. Raises
    :class:`DataError` for a bad magic number, a truncated file or trailing bytes.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise DataError(
            f"{path}: not an IDX file (magic number {data[:4].hex() or 'missing'}); "
            f"expected 0000080N for uint8 data — is it an HTML error page or a different format?"
        )
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes); download it again")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(
            f"{path}: IDX file {state} ({len(data)} bytes, header promises shape {shape} = {expected} bytes); "
            f"download it again"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def idx_directories(data_dir: str | None, subdir: str) -> list[Path]:
    """Directories searched for IDX files, in order.

    ``data_dir`` then ``$SNNJAX_IDX_DIR``; each first with ``subdir`` appended,
    then as given (so one directory can hold ``mnist/``, ``fashion_mnist/``, ...,
    and a dataset's own sub-directory wins over files at the top level).
    """
    roots = [d for d in (data_dir, os.environ.get(IDX_DIR_ENV)) if d]
    dirs: list[Path] = []
    for root in roots:
        for cand in (Path(root).expanduser() / subdir, Path(root).expanduser()):
            if cand.is_dir() and cand not in dirs:
                dirs.append(cand)
    return dirs


def _first_existing(directory: Path, stem: str) -> Path | None:
    for fname in (stem, stem + ".gz"):
        if (directory / fname).is_file():
            return directory / fname
    return None


def find_idx_split(
    directories: Sequence[Path], split_prefixes: Sequence[str]
) -> tuple[Path, Path] | None:
    """The first ``(images, labels)`` IDX pair found, or ``None``.

    For each directory and prefix (e.g. ``"t10k"`` or ``"emnist-letters-test"``)
    looks for ``{prefix}-images-idx3-ubyte`` and ``{prefix}-labels-idx1-ubyte``,
    each optionally with ``.gz``.
    """
    for directory in directories:
        for prefix in split_prefixes:
            images = _first_existing(directory, f"{prefix}-images-idx3-ubyte")
            labels = _first_existing(directory, f"{prefix}-labels-idx1-ubyte")
            if images is not None and labels is not None:
                return images, labels
    return None


def read_idx_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check an IDX image/label pair: ``(uint8 [N,H,W], int32 [N])``."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 images [N, H, W], got {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected labels [N], got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise DataError(f"{labels_path}: labels must be integers, got {labels.dtype} (an IDX label file holds "
                        f"uint8 labels); is it the right file?")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path.name} has {images.shape[0]} images but {labels_path.name} has {labels.shape[0]} labels; "
            f"the files do not belong together"
        )
    return images, labels.astype(np.int32)


# ---------------------------------------------------------------------------
# tensorflow-datasets (array_record data, no TensorFlow needed to read it)
# ---------------------------------------------------------------------------

TFDS_FILE_FORMAT = "array_record"


def tfds_prepared_path(name: str, data_dir: str | None) -> str | None:
    """Where tfds data for ``name`` is prepared on this machine, or ``None`` (local checks only)."""
    try:
        import tensorflow_datasets as tfds

        with _quiet_tfds():
            builder = tfds.builder(name, data_dir=data_dir, file_format=TFDS_FILE_FORMAT)
            return os.fspath(builder.data_path) if builder.is_prepared() else None
    except Exception:  # noqa: BLE001 - tfds missing or failing means "not usable here"
        return None


@contextlib.contextmanager
def _quiet_tfds() -> Iterator[None]:
    """Silence tfds's warnings (e.g. about missing dataset_info.json) while probing for data."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def read_tfds_split(
    name: str, split: Split, data_dir: str | None, *, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Read a tfds split through ``tfds.data_source``: ``(uint8 [N,28,28], int32 [N])``.

    With ``download=False`` only data already prepared in ``data_dir`` (tfds's
    default directory when ``None``) is read, and any tfds failure propagates
    (the caller decides what to try next). ``download=True`` lets tfds download
    and prepare in the ``array_record`` format, which needs TensorFlow.
    """
    import tensorflow_datasets as tfds

    with contextlib.nullcontext() if download else _quiet_tfds():
        ds = tfds.data_source(
            name,
            split=split,
            data_dir=data_dir,
            download=download,
            builder_kwargs={"file_format": TFDS_FILE_FORMAT},
        )
    n = len(ds)
    images = np.empty((n, 28, 28), dtype=np.uint8)
    labels = np.empty((n,), dtype=np.int32)
    for start in range(0, n, _TFDS_CHUNK):
        keys = list(range(start, min(start + _TFDS_CHUNK, n)))
        for i, example in zip(keys, _read_examples(ds, keys)):
            images[i] = np.asarray(example["image"]).reshape(28, 28)
            labels[i] = int(example["label"])
    return images, labels


_TFDS_CHUNK = 4096


def _read_examples(ds: Any, keys: list[int]) -> Sequence[Mapping[str, Any]]:
    """Examples ``keys`` of a tfds data source: one batched read (≈1.5× faster), else one by one.

    The one-by-one path serves data sources whose batched read is missing or
    broken (e.g. the mock of ``tfds.testing.mock_data`` in tfds 4.9).
    """
    getitems = getattr(ds, "__getitems__", None)
    if getitems is not None:
        try:
            return getitems(keys)
        except TypeError:
            pass
    return [ds[i] for i in keys]


__all__ = ["IDX_DIR_ENV", "TFDS_FILE_FORMAT", "find_idx_split", "idx_directories", "read_idx", "read_idx_split",
           "read_tfds_split", "tfds_prepared_path"]
