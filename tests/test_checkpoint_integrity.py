"""The checkpoint checksum covers its metadata: any edited metadata entry is refused (not only edited arrays)."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from snnjax.checkpoint import FILENAME, Checkpointer, describe
from snnjax.errors import CheckpointError

META = "__meta__"


def _ckpt(path):
    return Checkpointer(path, experiment="exp", config={"seed": 0, "lr": 0.5}, n_seeds=2)


def _state():
    return {"w": jnp.arange(6, dtype=jnp.float32).reshape(2, 3), "n": jnp.array([3, 4], jnp.int32)}


def _rewrite_meta(path, edit):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays[META].tobytes().decode())
    edit(meta)
    arrays[META] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize("edit", [
    lambda m: m.__setitem__("chunk", m["chunk"] + 1),
    lambda m: m.__setitem__("experiment", "other"),
    lambda m: m["config"].__setitem__("lr", 0.25),
    lambda m: m.__setitem__("n_seeds", 3),
    lambda m: m.__setitem__("extra", {"phase": "forged"}),
], ids=["chunk", "experiment", "config", "n_seeds", "extra"])
def test_edited_metadata_fails_the_checksum(tmp_path, edit):
    _ckpt(tmp_path).save(2, _state(), extra_meta={"phase": "task1"})
    path = tmp_path / FILENAME
    assert describe(path)["chunk"] == 2  # intact: reads
    _rewrite_meta(path, lambda m: None)
    assert describe(path)["chunk"] == 2  # re-encoding the same metadata is not a change
    _rewrite_meta(path, edit)
    with pytest.raises(CheckpointError, match="checksum"):
        describe(path)
    with pytest.raises(CheckpointError, match="checksum"):
        _ckpt(tmp_path).load(_state())
