"""Experiment ``supervised-stdp``: the thesis' Method 2 ("STDP + All-LTD"), over many seeds.

Protocol (reference-parameters §2): per seed, ``n_classes`` MNIST classes
(random per seed unless ``classes`` is given); ``n_exc`` excitatory neurons cut
into one segment per class; rounds of ``images_per_round`` training images (the
label's segment learns by ``target_rule``, the others by ``other_rule``), each
followed (after the first round, every ``eval_every`` rounds and the last) by a test on ``n_test`` test images of those classes with learning off
and the threshold fixed at ``v_th`` (−52 mV). Prediction: the segment with the
most spikes. ``tie_rule = "strict"`` counts ties and silence as wrong;
``"thesis"`` takes the first maximal segment (numpy ``argmax``), as the
original code did.

``protocol = "original"`` retrains the same first ``images_per_round`` images
every round (the original code's quirk); ``"fresh"`` walks through the
training pool, new images every round (wrapping around when the pool is
exhausted).

Test presentations run without plasticity (``plastic=False``: the rule is not
run, so its traces are not advanced either; by the end of a training image's
150 ms rest they are below 1e-3 of one increment). ``test_mode = "sequential"``
presents the test images one after another through the same network, whose
state (v, conductances, vt) carries over, as the original did; ``"parallel"`` presents every test image from the state at
the end of the training round (independent presentations, vmapped: much faster;
training resumes from the end-of-training state).

Beside the spiking network, every test point reports two classifiers that need no training
(:mod:`snnjax_plugins.readout`), per seed, on the training images that seed's network has seen
so far (the first ``images_per_round`` with ``"original"``, every image seen with ``"fresh"``)
and its test images: ``baseline_template_accuracy`` (class-mean template, cosine) and
``baseline_1nn_accuracy`` (1-NN on the pixels).

``rule`` other than ``"segment-supervised"`` names any rule plugin, built with its parameters
(a table ``[rule] name = "segment-oja", eta_pre = 1e-4``, dotted ``--set rule.eta_pre=1e-4``, or the
older ``rule_params``) and the experiment's ``n_classes`` when its factory takes one, e.g.
``"segment-oja"`` (:mod:`snnjax_plugins.supervised_rules`). ``target_rule`` and ``other_rule``
take a name or a table the same way (their parameters go to ``target_params`` / ``others_params``).
``regularizers`` (TOML ``[[regularizers]]``, default none) are regularizer plugins chained after the
rule (:func:`snnjax.plasticity.named_chain`, parts ``rule``, then each regularizer's name); a
factory that takes ``n_classes`` or ``image_ms`` (presentation + rest, 500 ms) gets the experiment's.
``neuron`` (default ``conductance-lif``, the thesis' excitatory neuron) and ``encoder`` (default
``poisson``) take a neuron-model / encoder plugin's name or a table with its parameters (``[neuron]
name = "conductance-lif", tau_m_ms = 80``; ``--set encoder.max_rate_hz=50``); a factory that takes
``dt_ms`` gets the run's, and a neuron factory that takes ``threshold_form`` gets the one
``adaptive_threshold`` asks for (``vt-copy`` or ``none``) unless the table sets it; ``inh_neuron``
(default ``inhibitory-lif``) is the inhibitory population's model, chosen the same way. The network
runs any :class:`snnjax.neurons.ScheduledNeuronModel` with conductance inputs and any rate encoder
(``probabilities(image, scale)``; see :class:`snnjax_plugins.network.NetworkConfig`).
``w_init_high``: initial weights ``U(0, w_init_high)``
(the thesis: 0.05).

The run (:attr:`RunContext.loop`): one phase ``train`` of ``n_rounds`` chunks (a round of training,
then its test if it is an evaluation round); the chunk's carry is the networks, the dropped-event
count and the accuracies so far, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.config import plugin_key, plugin_list
from snnjax.errors import ConfigError
from snnjax.plasticity import named_chain
from snnjax.plugins import chain_parts, choice_name, choice_params, create_choice
from snnjax.experiment import Experiment, RunContext, RunResult

from .. import network as net
from ..readout import BASELINE_LABELS, baselines_per_seed
from ..readout import segment_predict as predict

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "dataset": "mnist-embedded",
    "data_dir": "",
    "n_classes": 3,
    "classes": [-1],
    "n_exc": 30,
    "adaptive_threshold": True,
    "w_init_high": 0.05,
    **net.part_keys(exc="conductance-lif", inh="inhibitory-lif"),  # neuron, inh_neuron, encoder
    "rule": plugin_key("rule", "segment-supervised"),
    "target_rule": plugin_key("rule", "stdp"),
    "other_rule": plugin_key("rule", "all-ltd"),
    "rule_params": {},
    "regularizers": plugin_list("regularizer"),
    "protocol": "original",
    "n_rounds": 50,
    "images_per_round": 100,
    "n_test": 1000,
    "eval_every": 1,
    "tie_rule": "strict",
    "test_mode": "sequential",
    "dt_ms": 0.1,
    "x64": False,
}

THESIS = {
    "accuracy_first_round": "≈80 % (thesis, after 100 images)",
    "final_accuracy": "80.0 ± 13.0 % with adaptive threshold; 74.9 ± 19.8 % without (thesis)",
}


def validate(cfg: Mapping[str, Any]) -> None:
    """Check the config before any data is read or anything is compiled."""
    for key in ("n_classes", "n_exc", "n_rounds", "images_per_round", "n_test", "eval_every"):
        if cfg[key] <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]}")
    if cfg["n_exc"] % cfg["n_classes"]:
        raise ConfigError(
            f"n_exc={cfg['n_exc']} excitatory neurons cannot be split into {cfg['n_classes']} equal segments "
            f"(one per class): choose n_exc as a multiple of n_classes"
        )
    classes = _given_classes(cfg)
    if classes is not None:
        if len(classes) != cfg["n_classes"]:
            raise ConfigError(f"classes={classes} lists {len(classes)} classes but n_classes={cfg['n_classes']}")
        if len(set(classes)) != len(classes):
            raise ConfigError(f"classes={classes} repeats a class")
    for key, allowed in (("protocol", ("original", "fresh")), ("tie_rule", ("strict", "thesis")),
                         ("test_mode", ("sequential", "parallel"))):
        if cfg[key] not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {cfg[key]!r}")
    if cfg["dt_ms"] <= 0:
        raise ConfigError(f"dt_ms must be a positive number of ms, got {cfg['dt_ms']}")
    if not cfg["w_init_high"] > 0:
        raise ConfigError(f"w_init_high (initial weights are drawn from U(0, w_init_high)) must be > 0, "
                          f"got {cfg['w_init_high']}")
    params = cfg["rule_params"]
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise ConfigError(f"rule_params must be a table of parameter = value (TOML: rule_params = {{eta_pre = 1e-4}}; "
                          f"--set \"rule_params={{'eta_pre': 1e-4}}\"), got {params!r}")
    if params and choice_name(cfg["rule"]) == "segment-supervised":
        raise ConfigError("rule_params is for a rule other than segment-supervised (which takes target_rule and "
                          "other_rule); set rule = \"segment-oja\" or leave rule_params empty")
    both = sorted(set(params) & set(choice_params(cfg["rule"])))
    if both:
        raise ConfigError(f"rule parameter(s) {', '.join(map(repr, both))} given both in rule and in rule_params; "
                          f"keep one (rule.PARAMETER is the newer form)")


def _given_classes(cfg: Mapping[str, Any]) -> list[int] | None:
    classes = [int(c) for c in cfg["classes"]]
    return None if classes in ([], [-1]) else classes


# --------------------------------------------------------------------------------------------
# data: one row of images per seed
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SeedData:
    """Per-seed arrays (leading axis = seed); segments are indices into that seed's classes."""

    classes: np.ndarray  #: int [S, n_classes]
    train_x: np.ndarray  #: uint8 [S, P, 784]
    train_seg: np.ndarray  #: int32 [S, P]
    test_x: np.ndarray  #: uint8 [S, n_test, 784]
    test_seg: np.ndarray  #: int32 [S, n_test]


def prepare_data(cfg: Mapping[str, Any], seed_ids: Sequence[int], registry: Any) -> SeedData:
    """Load the dataset and cut one class subset, training pool and test set per seed.

    Seed ``i`` (of ``seed_ids``) draws its classes and image order from ``default_rng([cfg["seed"], i])``.
    """
    from snnjax import data

    kw = {"data_dir": cfg["data_dir"] or None, "registry": registry}
    train = data.load(cfg["dataset"], "train", **kw)
    test = data.load(cfg["dataset"], "test", **kw)
    present = sorted(set(np.unique(train.labels)) & set(np.unique(test.labels)))
    given = _given_classes(cfg)
    if given is not None:
        missing = [c for c in given if c not in present]
        if missing:
            raise ConfigError(f"classes {missing} are not in dataset {cfg['dataset']!r}; it has classes {present}")
    if cfg["n_classes"] > len(present):
        raise ConfigError(f"n_classes={cfg['n_classes']} but dataset {cfg['dataset']!r} has only {len(present)} classes")
    rows = []
    for i in seed_ids:
        rng = np.random.default_rng([cfg["seed"], i])
        classes = np.array(given if given is not None else rng.choice(present, cfg["n_classes"], replace=False))
        rows.append((classes, *_split_for(classes, train, test, rng, cfg)))
    pool = min(len(r[1]) for r in rows)
    n_test = min(len(r[3]) for r in rows)
    return SeedData(
        classes=np.stack([r[0] for r in rows]),
        train_x=np.stack([r[1][:pool] for r in rows]),
        train_seg=np.stack([r[2][:pool] for r in rows]),
        test_x=np.stack([r[3][:n_test] for r in rows]),
        test_seg=np.stack([r[4][:n_test] for r in rows]),
    )


def _split_for(classes, train, test, rng, cfg):
    def subset(ds, limit=None):
        keep = np.isin(ds.labels, classes)
        x = ds.images[keep].reshape(int(keep.sum()), -1)
        y = ds.labels[keep]
        order = rng.permutation(len(y))
        x, y = x[order], y[order]
        if limit is not None:
            x, y = x[:limit], y[:limit]
        seg = np.array([int(np.nonzero(classes == lab)[0][0]) for lab in y], dtype=np.int32)
        return x.astype(np.uint8), seg

    tx, ts = subset(train)
    vx, vs = subset(test, cfg["n_test"])
    if len(ts) == 0 or len(vs) == 0:
        raise ConfigError(f"no images of classes {classes.tolist()} in dataset {cfg['dataset']!r}")
    return tx, ts, vx, vs


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------


def build_model(cfg: Mapping[str, Any], registry: Any):
    """``(NetworkConfig, LearningRule)`` for the config; every component by plugin name from ``registry``."""
    form = "vt-copy" if cfg["adaptive_threshold"] else "none"
    dt = cfg["dt_ms"]
    exc = create_choice(registry, "neuron", cfg["neuron"], dt_ms=dt, threshold_form=form)
    inh = create_choice(registry, "neuron", cfg["inh_neuron"], dt_ms=dt)
    encoder = create_choice(registry, "encoder", cfg["encoder"], dt_ms=dt)
    netcfg = net.thesis_config(n_exc=cfg["n_exc"], dt_ms=dt, w_init_high=cfg["w_init_high"], exc=exc, inh=inh,
                               input_encoder=encoder)
    if choice_name(cfg["rule"]) == "segment-supervised":
        kw = {"n_classes": cfg["n_classes"], **choice_params(cfg["rule"])}
        for role, key in (("target", "target_rule"), ("others", "other_rule")):
            kw.setdefault(role, choice_name(cfg[key]))
            if choice_params(cfg[key]):
                kw.setdefault(f"{role}_params", choice_params(cfg[key]))
        # the segments' rules by name from the run's registry (two built-in trace rules merge into one)
        rule = create_choice(registry, "rule", {"name": "segment-supervised", **kw}, registry=registry)
    else:  # a rule that takes the segment count gets the experiment's
        choice = {"name": choice_name(cfg["rule"]), **dict(cfg["rule_params"]), **choice_params(cfg["rule"])}
        rule = create_choice(registry, "rule", choice, n_classes=cfg["n_classes"])
    if cfg["regularizers"]:
        image_ms = netcfg.t_present_ms + netcfg.t_rest_ms
        regs = [create_choice(registry, "regularizer", c, n_classes=cfg["n_classes"], image_ms=image_ms)
                for c in cfg["regularizers"]]
        rule = named_chain(*chain_parts(rule, cfg["regularizers"], regs))
    return netcfg, rule


def make_programs(netcfg, rule, cfg: Mapping[str, Any]):
    """Per-seed pure functions ``train_round`` and ``evaluate`` (batched over the seeds by the run loop)."""
    n_classes, tie_rule = cfg["n_classes"], cfg["tie_rule"]
    v_test = netcfg.exc.v_th_mv

    def train_round(state, key, images, segs):
        gates = net.segment_gates(segs, netcfg.n_exc, n_classes, state.w.dtype)
        state, out = net.present_many(state, images, key, netcfg, rule, learn=1.0, gates=gates)
        return state, jnp.sum(out.dropped_events)

    def evaluate(state, key, images, segs):
        if cfg["test_mode"] == "sequential":
            state, out = net.present_many(state, images, key, netcfg, rule, learn=0.0, fixed_v2_mv=v_test,
                                          plastic=False)
            counts, dropped = out.exc_counts, jnp.sum(out.dropped_events)
        else:
            keys = jax.random.split(key, images.shape[0])
            out = net.present_each(state, images, keys, netcfg, rule, learn=0.0, fixed_v2_mv=v_test, plastic=False)
            counts, dropped = out.exc_counts, jnp.sum(out.dropped_events)
        pred = predict(counts, n_classes, tie_rule)
        accuracy = 100.0 * jnp.mean(pred == segs)
        silent = 100.0 * jnp.mean(counts.sum(-1) == 0)
        return state, accuracy, silent, dropped

    return train_round, evaluate


def run(ctx: RunContext) -> RunResult:
    cfg = ctx.config
    netcfg, rule = build_model(cfg, ctx.registry)
    data = prepare_data(cfg, ctx.seed_ids, ctx.registry)
    S, R, B = ctx.n_seeds, cfg["n_rounds"], cfg["images_per_round"]
    pool = data.train_x.shape[1]
    if cfg["protocol"] == "original" and pool < B:
        raise ConfigError(f"images_per_round={B} but only {pool} training images of the chosen classes exist")
    train_round, evaluate = make_programs(netcfg, rule, cfg)
    loop = ctx.loop
    v_train = loop.batched(train_round)
    v_eval = loop.batched(evaluate)

    init_keys, run_keys = loop.split(ctx.seed_keys(), 2)
    state = loop.batched(lambda k: net.init_network(k, netcfg, rule), name="init")(init_keys)
    test_x, test_seg = jnp.asarray(data.test_x), jnp.asarray(data.test_seg)

    evals = evaluation_rounds(R, cfg["eval_every"])
    x = [B * (r + 1) for r in evals]
    base = baseline_curves(data, [images_seen(r, B, pool, cfg["protocol"]) for r in evals])

    def train_and_test(r, carry):
        """Round ``r``: train on its images, then test if ``r`` is an evaluation round."""
        state, dropped, acc, silent = carry
        dropped, acc, silent = np.array(dropped, np.int64), np.array(acc), np.array(silent)
        idx = np.arange(B) if cfg["protocol"] == "original" else (np.arange(B) + r * B) % pool
        state, d_train = v_train(state, loop.fold(run_keys, 2 * r), jnp.asarray(data.train_x[:, idx]),
                                 jnp.asarray(data.train_seg[:, idx]))
        dropped += np.asarray(d_train)
        if r in evals:
            done = evals.index(r) + 1
            state_after_test, a, s, d_test = v_eval(state, loop.fold(run_keys, 2 * r + 1), test_x, test_seg)
            dropped += np.asarray(d_test)
            if cfg["test_mode"] == "sequential":
                state = state_after_test
            acc[:, done - 1] = np.asarray(a)
            silent[:, done - 1] = np.asarray(s)
            ctx.partial = _result(acc[:, :done], silent[:, :done], x[:done], data, cfg,
                                  {k: v[:, :done] for k, v in base.items()})
        return state, dropped, acc, silent

    # the carry: the networks, the events beyond the padded per-step lists so far (exact while 0; carried
    # so that a resumed run reports the whole run's count) and the test results so far [S, len(evals)]
    carry = (state, np.zeros(S, np.int64), np.full((S, len(evals)), np.nan), np.full((S, len(evals)), np.nan))
    state, dropped, acc, silent = loop.phase("train", R, train_and_test, carry, unit="rounds")
    dropped, acc, silent = np.asarray(dropped, np.int64), np.asarray(acc), np.asarray(silent)
    result = _result(acc, silent, x, data, cfg, base)
    result.extra["dropped_events_per_seed"] = dropped.tolist()
    if dropped.any():
        import warnings

        warnings.warn(f"{int(dropped.sum())} spike events did not fit the padded event lists (results are not exact); "
                      f"raise k_in / k_post / k_inh of the network config", stacklevel=1)
    result.figures.extend(_figures(ctx, result, state, cfg))
    result.figures.append(_raster(ctx, state, netcfg, rule, data, run_keys[0]))
    return result


def evaluation_rounds(n_rounds: int, every: int) -> list[int]:
    """Rounds (0-based) after which the network is tested: the first, every ``every``-th, the last."""
    return sorted({0, n_rounds - 1} | {r for r in range(n_rounds) if (r + 1) % every == 0})


def images_seen(r: int, images_per_round: int, pool: int, protocol: str) -> int:
    """How many distinct training images (the first ones of the seed's pool) the network has seen after round ``r``."""
    if protocol == "original":
        return images_per_round
    return min(images_per_round * (r + 1), pool)


def baseline_curves(data: SeedData, n_seen: Sequence[int]) -> dict[str, np.ndarray]:
    """Template and 1-NN baselines ``[S, len(n_seen)]`` (%): per seed, its first ``n_seen[k]`` training
    images and all its test images (exactly what its network has seen and is tested on at point ``k``)."""
    cache: dict[int, dict[str, np.ndarray]] = {}
    for n in set(n_seen):
        cache[n] = baselines_per_seed(data.train_x, data.train_seg, data.test_x, data.test_seg, n_train=n)
    return {name: np.stack([cache[n][name] for n in n_seen], axis=1) for name in BASELINE_LABELS}


def _result(acc, silent, x, data, cfg, base) -> RunResult:
    metrics = {
        "accuracy": acc,
        "silent_test_images": silent,
        "accuracy_first_round": acc[:, 0],
        "final_accuracy": acc[:, -1],
        **base,
    }
    extra = {
        "classes_per_seed": data.classes.tolist(),
        "n_test_effective": int(data.test_x.shape[1]),
        "training_pool": int(data.train_x.shape[1]),
        "images_per_round": int(cfg["images_per_round"]),
    }
    curves_x = {"accuracy": x, "silent_test_images": x, **{name: x for name in base}}
    return RunResult(metrics=metrics, curves_x=curves_x, extra=extra)


def _figures(ctx: RunContext, result: RunResult, state, cfg) -> list[str]:
    from snnjax import plots

    out = []
    marks = {"thesis: ≈80 % after 100 images": (100, 80.0)}
    rule = "STDP + All-LTD" if choice_name(cfg["rule"]) == "segment-supervised" else choice_name(cfg["rule"])
    label = rule + (" + adaptive threshold" if cfg["adaptive_threshold"] else "")
    out.append(str(plots.learning_curves(ctx.out_dir / "learning_curve.png", result.curves_x["accuracy"],
                                         {label: result.metrics["accuracy"],
                                          **{BASELINE_LABELS[k]: result.metrics[k] for k in BASELINE_LABELS}},
                                         marks=marks,
                                         title=f"supervised-stdp ({cfg['protocol']} protocol)")))
    w = np.asarray(state.w)
    np.savez_compressed(ctx.out_dir / "weights.npz", W=w)
    out.append(str(plots.receptive_fields(ctx.out_dir / "receptive_fields.png", {"seed 0": w[0]})))
    return out


def _raster(ctx: RunContext, state, netcfg, rule, data: SeedData, key) -> str:
    """Spikes of seed 0's trained network for its first test image (``raster.npz``, ``raster.png``)."""
    from snnjax.report import raster

    st0 = jax.tree_util.tree_map(lambda leaf: leaf[0], state)
    _, out = net.present(st0, data.test_x[0, 0], jax.random.fold_in(key, 2**31 - 1), netcfg, rule,
                         fixed_v2_mv=netcfg.exc.v_th_mv, plastic=False, record=("exc_spikes",))
    spikes = np.asarray(out.monitors["exc_spikes"])
    np.savez_compressed(ctx.out_dir / "raster.npz", spikes=spikes, dt_ms=netcfg.dt_ms)
    steps, neurons = np.nonzero(spikes)
    return str(raster(ctx.out_dir / "raster.png", steps * netcfg.dt_ms, neurons, n_neurons=spikes.shape[1],
                      title="seed 0, first test image (excitatory neurons)"))


def supervised_stdp() -> Experiment:
    """Thesis Method 2: supervised STDP + All-LTD segments, learning curve over rounds."""
    return Experiment(name="supervised-stdp", description=supervised_stdp.__doc__.splitlines()[0],
                      defaults=DEFAULTS, run=run, validate=validate, thesis=THESIS)
