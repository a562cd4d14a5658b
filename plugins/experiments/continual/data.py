"""Data of the ``continual`` experiment: one task's images on the shared outputs, and the
pixel baselines (class-mean template, 1-NN) on the same images.
"""

from __future__ import annotations

import numpy as np

from snnjax.errors import ConfigError, DataError

from ... import readout


def load_task(name: str, classes: list[int] | None, split: str, limit: int, n_out: int, cfg, registry):
    """``(images uint8 [N, 28, 28], outputs int32 [N], classes)``: labels mapped to ``0..len(classes)-1``."""
    from snnjax import data

    params = {"transpose": bool(cfg["emnist_transpose"])} if name.startswith("emnist") else None
    ds = data.load(name, split, data_dir=cfg["data_dir"] or None, registry=registry, source_params=params)
    if ds.images.shape[1:] != (28, 28):
        raise ConfigError(f"dataset {name!r} has images of shape {ds.images.shape[1:]}; the conv network needs 28×28")
    if classes is None:
        classes = sorted(np.unique(ds.labels).tolist())
        if len(classes) > n_out:
            raise ConfigError(f"dataset {name!r} has {len(classes)} classes, more than the {n_out} shared outputs; "
                              f"choose at most {n_out} with task*_classes or raise n_outputs")
    keep = np.isin(ds.labels, classes)
    images, labels = ds.images[keep], ds.labels[keep]
    if limit:
        images, labels = images[:limit], labels[:limit]
    if labels.size == 0:
        raise DataError(f"dataset {name!r} split {split!r} has no images of classes {classes}")
    lut = {c: i for i, c in enumerate(classes)}
    return images, np.asarray([lut[int(v)] for v in labels], np.int32), list(classes)


def pixel_baselines(data, n_seeds: int) -> dict[str, np.ndarray]:
    """Class-mean template and 1-NN accuracies (%) on the pixels of the same images as the network (per seed).

    ``baseline_{template,1nn}_accuracy_task{1,2}``: trained on that task's training images, tested
    on its test images; ``..._task1_after_both``: trained on both tasks' training images on the
    shared outputs (task-2 class ``i`` → output ``i``, as the network), tested on task 1. The seeds
    share the images, so every seed gets the same values.
    """
    (x1, y1, xt1, yt1), (x2, y2, xt2, yt2) = data
    cases = {"task1": (x1, y1, xt1, yt1), "task2": (x2, y2, xt2, yt2),
             "task1_after_both": (np.concatenate([x1, x2]), np.concatenate([y1, y2]), xt1, yt1)}
    out = {}
    for name, (tx, ty, vx, vy) in cases.items():
        out[f"baseline_template_accuracy_{name}"] = np.full(n_seeds, readout.template_accuracy(tx, ty, vx, vy))
        out[f"baseline_1nn_accuracy_{name}"] = np.full(n_seeds, readout.nearest_neighbour_accuracy(tx, ty, vx, vy))
    return out
