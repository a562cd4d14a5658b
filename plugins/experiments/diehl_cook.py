"""Experiment ``diehl-cook``: unsupervised STDP (Diehl & Cook 2015) with label assignment.

Per seed: train the D&C network (``n_exc`` excitatory neurons, dt 0.5 ms,
``stdp-dc15``, weight normalisation to 78, θ threshold, the "fewer than 5
spikes → raise the intensity and repeat" rule) on ``n_train`` images; assign
each excitatory neuron the class to which it responded most (mean spike count
per class) over the last ``assign_window`` training presentations, as D&C did;
then present ``n_test`` test images with learning and θ frozen and predict the
class whose assigned neurons fire most on average. Beside it, per seed, the
class-mean template and 1-NN baselines (:mod:`snnjax_plugins.readout`) on the
same ``n_train`` training images (with their labels) and the same test images.

``rule`` takes a rule plugin's name or a table with its parameters (TOML ``[rule]
name = "stdp-dc15", nu_post = 5e-3``; ``--set rule.nu_post=5e-3``); ``regularizers`` (TOML
``[[regularizers]]``, default none) are regularizer plugins chained after it
(:func:`snnjax.plasticity.named_chain`); a regularizer that takes ``n_classes`` or ``image_ms``
gets 10 and the presentation + rest time. ``neuron`` (default ``dc15-lif``, D&C's excitatory neuron) and
``encoder`` (default ``poisson``) take a neuron-model / encoder plugin's name or a table with its
parameters the same way (``[neuron] name = "dc15-lif", theta_plus_mv = 0.1``); a factory that takes
``dt_ms`` gets the run's; ``inh_neuron`` (default ``dc15-inhibitory-lif``) is the inhibitory
population's model. At test θ is frozen by setting the model's ``theta_plus_mv`` to 0 (a model
without that field is tested as it is).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.config import plugin_key, plugin_list
from snnjax.errors import ConfigError
from snnjax.plasticity import named_chain
from snnjax.plugins import chain_parts, create_choice
from snnjax.experiment import Experiment, RunContext, RunResult

from .. import network as net
from ..readout import baselines_per_seed

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "dataset": "mnist-embedded",
    "data_dir": "",
    "n_exc": 100,
    "n_train": 4000,
    "n_test": 1000,
    "assign_window": 1000,
    "chunk": 250,
    **net.part_keys(exc="dc15-lif", inh="dc15-inhibitory-lif"),  # neuron, inh_neuron, encoder
    "rule": plugin_key("rule", "stdp-dc15"),
    "regularizers": plugin_list("regularizer"),
    "dt_ms": 0.5,
}

THESIS = {"test_accuracy": "82.9 % (Diehl & Cook 2015, 100 neurons, full MNIST, 3 epochs)"}


def validate(cfg: Mapping[str, Any]) -> None:
    for key in ("n_exc", "n_train", "n_test", "assign_window", "chunk"):
        if cfg[key] <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]}")
    if cfg["assign_window"] > cfg["n_train"]:
        raise ConfigError(f"assign_window={cfg['assign_window']} exceeds n_train={cfg['n_train']}")
    if cfg["dt_ms"] <= 0:
        raise ConfigError(f"dt_ms must be a positive number of ms, got {cfg['dt_ms']}")


def assign_labels(counts: jnp.ndarray, labels: jnp.ndarray, n_classes: int) -> jnp.ndarray:
    """Each neuron's class: argmax over classes of its mean spike count (``counts[n, n_exc]``)."""
    onehot = jax.nn.one_hot(labels, n_classes, dtype=jnp.float32)  # [n, C]
    totals = onehot.T @ counts.astype(jnp.float32)  # [C, n_exc]
    per_class = totals / jnp.maximum(onehot.sum(0), 1.0)[:, None]
    return jnp.argmax(per_class, axis=0)


def predict(counts: jnp.ndarray, assignment: jnp.ndarray, n_classes: int) -> jnp.ndarray:
    """Class whose assigned neurons have the highest mean count (``counts[n, n_exc]``)."""
    onehot = jax.nn.one_hot(assignment, n_classes, dtype=jnp.float32)  # [n_exc, C]
    rate = counts.astype(jnp.float32) @ onehot / jnp.maximum(onehot.sum(0), 1.0)
    return jnp.argmax(rate, axis=-1)


def run(ctx: RunContext) -> RunResult:
    from snnjax import data

    cfg = ctx.config
    reg = ctx.registry
    rule = create_choice(reg, "rule", cfg["rule"])
    dt = cfg["dt_ms"]
    netcfg = net.dc15_config(n_exc=cfg["n_exc"], dt_ms=dt, exc=create_choice(reg, "neuron", cfg["neuron"], dt_ms=dt),
                             inh=create_choice(reg, "neuron", cfg["inh_neuron"], dt_ms=dt),
                             input_encoder=create_choice(reg, "encoder", cfg["encoder"], dt_ms=dt))
    if cfg["regularizers"]:
        image_ms = netcfg.t_present_ms + netcfg.t_rest_ms
        regs = [create_choice(reg, "regularizer", c, n_classes=10, image_ms=image_ms) for c in cfg["regularizers"]]
        rule = named_chain(*chain_parts(rule, cfg["regularizers"], regs))
    test_cfg = netcfg
    if dataclasses.is_dataclass(netcfg.exc) and hasattr(netcfg.exc, "theta_plus_mv"):  # θ frozen at test
        test_cfg = dataclasses.replace(netcfg, exc=dataclasses.replace(netcfg.exc, theta_plus_mv=0.0))
    kw = {"data_dir": cfg["data_dir"] or None, "registry": reg}
    train = data.load(cfg["dataset"], "train", **kw)
    test = data.load(cfg["dataset"], "test", limit=cfg["n_test"], **kw)
    n_classes = int(max(train.labels.max(), test.labels.max())) + 1
    if cfg["n_train"] > len(train.labels):
        raise ConfigError(f"n_train={cfg['n_train']} but dataset {cfg['dataset']!r} has {len(train.labels)} training images")
    S, N, C = ctx.n_seeds, cfg["n_train"], cfg["chunk"]
    orders = np.stack([np.random.default_rng([cfg["seed"], i]).permutation(len(train.labels))[:N] for i in ctx.seed_ids])
    train_x = train.images.reshape(len(train.labels), -1)[orders]  # [S, N, 784]
    train_y = train.labels[orders]
    test_x = jnp.asarray(test.images.reshape(len(test.labels), -1))
    loop = ctx.loop
    k_init, k_run = loop.split(ctx.seed_keys(), 2)
    state = loop.batched(lambda k: net.init_network(k, netcfg, rule), name="init")(k_init)

    def train_chunk(state, key, images):
        state, out = net.present_many(state, images, key, netcfg, rule, learn=1.0)
        return state, out.exc_counts, out.n_presentations

    def evaluate(state, key, images):
        _, out = net.present_many(state, images, key, test_cfg, rule, learn=0.0, plastic=False)
        return out.exc_counts

    v_train = loop.batched(train_chunk)
    v_eval = loop.batched(evaluate, shared=(2,))

    def chunk(c, carry):
        state, counts_all, repeats = carry[0], np.array(carry[1]), np.array(carry[2])
        lo, hi = c * C, min(N, (c + 1) * C)
        state, counts, reps = v_train(state, loop.fold(k_run, c), jnp.asarray(train_x[:, lo:hi]))
        counts_all[:, lo:hi] = np.asarray(counts)
        repeats[:, lo:hi] = np.asarray(reps)
        ctx.partial = RunResult(metrics={"mean_presentations_per_image": repeats[:, :hi].mean(axis=1)})
        return state, counts_all, repeats

    # the carry: network state + the responses recorded so far (for label assignment)
    carry = (state, np.zeros((S, N, cfg["n_exc"]), np.int32), np.zeros((S, N), np.int32))
    state, counts_all, repeats = loop.phase("train", -(-N // C), chunk, carry, unit="training images",
                                            report=lambda done: (min(N, done * C), N))
    counts_all, repeats = np.asarray(counts_all), np.asarray(repeats)
    window = slice(N - cfg["assign_window"], N)
    assignment = loop.batched(lambda c, y: assign_labels(c, y, n_classes), name="assign_labels")(
        jnp.asarray(counts_all[:, window]), jnp.asarray(train_y[:, window]))
    test_counts = v_eval(state, loop.fold(k_run, 10**6), test_x)
    pred = loop.batched(lambda c, a: predict(c, a, n_classes), name="predict")(test_counts, assignment)
    accuracy = 100.0 * np.mean(np.asarray(pred) == test.labels[None, :], axis=1)
    # what a classifier that needs no training gets with the labels of the same training images
    flat_test = test.images.reshape(len(test.labels), -1)
    base = baselines_per_seed(train_x, train_y, np.broadcast_to(flat_test, (S, *flat_test.shape)),
                              np.broadcast_to(test.labels, (S, len(test.labels))))
    result = RunResult(
        metrics={
            "test_accuracy": accuracy,
            "mean_presentations_per_image": repeats.mean(axis=1),
            "neurons_never_assigned_spikes": (counts_all[:, window].sum(1) == 0).sum(1).astype(float),
            **base,
        },
        extra={"n_classes": n_classes, "n_test": int(len(test.labels))},
    )
    from snnjax import plots

    w = np.asarray(state.w)
    np.savez_compressed(ctx.out_dir / "weights.npz", W=w, theta=np.asarray(state.exc.theta))
    result.figures.append(str(plots.receptive_fields(ctx.out_dir / "receptive_fields.png", {"seed 0": w[0]})))
    return result


def diehl_cook() -> Experiment:
    """Diehl & Cook 2015: unsupervised STDP, neurons labelled by response, test accuracy."""
    return Experiment(name="diehl-cook", description=diehl_cook.__doc__.splitlines()[0],
                      defaults=DEFAULTS, run=run, validate=validate, thesis=THESIS)
