"""Experiment ``use-it-or-lose-it``: the thesis' Method 3, responses to noise and to unknown classes.

Protocol (reference-parameters §3): the Method 2 network (adaptive threshold,
30 excitatory neurons in one segment per known class, STDP on the label's
segment, All-LTD on the others) is trained on the training images of the known
classes (default [7, 4, 6]; ``passes`` passes, reshuffled per pass and seed)
from the same seeds **without** the regularizer (``k_p = 0`` throughout) and
**with** it. The "with" model's decay strength is ``k_p_train`` during
training, ``k_p_flush`` in the flush after it and ``k_p_test`` at test.

The default is what the authors' code ran (the ``published`` protocol):
``k_p_train = 0``, ``k_p_flush = 1``, ``k_p_test = 0``. In their Brian 2
notebooks ``k_p`` is the synapse model variable ``test_stop``, which Brian 2
starts at 0 and which is first set to 1 for the flush; ``t_s`` is still stamped
at every input spike during training. The whole regularisation is then a
one-shot pruning by recency at the flush: at its first flush spike, input
``i``'s weights are multiplied by ``exp(−((t_flush − t_s[i])/τ_prun)²)``,
``t_s[i]`` being its last spike in training. ``k_p_train = 1`` is the formula
applied during training, as the thesis text describes it; it silences this
network (docs/reproductions/method3.md).

With ``k_p_train = 0`` the two models are the same program on the same draws
until the flush, so one network per seed is trained and its state is split
into the two models at the flush (half the training cost). With
``k_p_train = 1`` both are trained, as one vmapped batch of ``2 × n_seeds``
networks (``[without × seeds, with × seeds]``); ``k_p`` lives in the
regularizer's state, so the "without" networks are the same program with
``k_p = 0``. Seed ``i`` of both models shares its initial weights, delays,
Poisson draws and image order.

The flush (``flush``): ``"poisson"`` runs ``flush_ms`` of every input at
``flush_rate_hz``, learning off, each network at its ``k_p`` (the original;
≈ 4 % of inputs stay silent through 50 ms at 63 Hz and keep their weights);
``"exact"`` applies the pending decay to every input at once
(:func:`~snnjax_plugins.regularizers.apply_pending`); ``"auto"`` is
``"poisson"`` for ``lazy``, and for ``continuous`` ``"exact"`` when
``k_p_train = 0`` (the one-shot decay) and ``"none"`` when ``k_p_train = 1``
(its decay is always up to date). Combinations that would decay twice or not at
all are rejected.

Then, with learning off, the threshold fixed at −52 mV and ``k_p = k_p_test``,
the excitatory response is counted on four test sets:

* ``noise``: δ-correlated noise, U[0, 1] per pixel, scaled so that its mean
  intensity equals the mean intensity of the dataset's training images (or
  divided by ``noise_divider`` when that is > 0; the original's divider was ≈ 16);
* ``blurred``: U[0, 1] noise blurred with a Gaussian of σ = ``blur_sigma``
  pixels per image (``blur_across_images = true``: also along the sample axis, the
  original's quirk), min-max scaled to [0, 1] (per image; over the whole set
  with ``blur_across_images``), then mean-matched as above;
* ``known``: test images of the known classes (accuracy: the segment with the
  most spikes);
* ``unknown``: test images of classes the network never saw (default [9, 2, 1]).

``test_mode = "parallel"`` (default) presents every test image independently
(vmapped: much faster) from one start state: with ``test_start = "rested"``
(default) the state after the flush followed by one silent slot of
``t_rest_ms`` (learning off, no decay), as every test image but the first has in
the original (each follows the previous image's 150 ms rest); with
``"flush"`` the state at the flush's last step, conductances and voltages still
raised by the flush's input. ``"sequential"`` presents each set's images one
after another, the network state (v, conductances, vt) carrying over within the
set, as the original did; every set starts from the post-flush state.

The network's parts are plugins chosen by name (a name or a table with parameters, as in
``supervised-stdp``): ``neuron`` (the excitatory neuron model, default ``conductance-lif``; it gets
``dt_ms`` and the ``threshold_form`` of ``adaptive_threshold`` unless the table sets them),
``inh_neuron`` (the inhibitory neuron model, default ``inhibitory-lif``), ``encoder`` (default
``poisson``), ``target_rule`` / ``other_rule`` (the segments' rules, default
``stdp`` / ``all-ltd``; ``[target_rule] name = "stdp", a_pre = 1e-3``), built from the run's registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.config import plugin_key
from snnjax.errors import ConfigError, did_you_mean
from snnjax.experiment import Experiment, RunContext, RunResult
from snnjax.plasticity import chain
from snnjax.plugins import choice_name, choice_params, create_choice

from .. import network as net
from ..readout import baselines_per_seed
from ..regularizers import (SEMANTICS, apply_pending, check_kp, check_options, find_state, resolve_tau_prun_ms,
                            set_kp)
from ..readout import segment_predict as predict

TEST_SETS = ("noise", "blurred", "known", "unknown")
MODELS = ("without", "with")
FLUSH = ("auto", "poisson", "exact", "none")
TEST_START = ("rested", "flush")

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "dataset": "mnist-embedded",
    "data_dir": "",
    "known_classes": [7, 4, 6],
    "unknown_classes": [9, 2, 1],
    "n_exc": 30,
    "adaptive_threshold": True,
    **net.part_keys(exc="conductance-lif", inh="inhibitory-lif"),  # neuron, inh_neuron, encoder
    "target_rule": plugin_key("rule", "stdp"),
    "other_rule": plugin_key("rule", "all-ltd"),
    "n_train": 0,
    "passes": 1.0,
    "train_chunk": 100,
    "n_test": 300,
    "test_sets": list(TEST_SETS),
    "test_mode": "parallel",
    "test_start": "rested",
    "semantics": "lazy",
    "tau_prun_ms": 0.0,
    "k_p_train": 0.0,
    "k_p_flush": 1.0,
    "k_p_test": 0.0,
    "grace_ms": 0.0,
    "protect": "none",
    "floor": 0.0,
    "flush": "auto",
    "flush_ms": 50.0,
    "flush_rate_hz": 63.0,
    "noise_divider": 0.0,
    "blur_sigma": 2.0,
    "blur_across_images": False,
    "tie_rule": "strict",
    "t_present_ms": 350.0,
    "t_rest_ms": 150.0,
    "dt_ms": 0.1,
    "x64": False,
}

THESIS = {
    "noise_fraction": "3162 → 1 spikes (thesis): ≈0.03 %",
    "blurred_fraction": "3265 → 1 spikes (thesis): ≈0.03 %",
    "known_fraction": "416 → 344 spikes (thesis): 83 %",
    "unknown_fraction": "346 → 240 spikes (thesis): 69 %",
    "unknown_reduction": "1.8× lower (thesis claim; its table gives 346/240 = 1.44×)",
    "accuracy_with": "88.6 % (original code's output, regularised)",
}


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------


def validate(cfg: Mapping[str, Any]) -> None:
    """Check the config before any data is read or anything is compiled."""
    for key in ("n_exc", "train_chunk", "n_test"):
        if cfg[key] <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]}")
    if cfg["n_train"] < 0:
        raise ConfigError(f"n_train must be ≥ 0 (0 = every training image of the known classes), got {cfg['n_train']}")
    known = [int(c) for c in cfg["known_classes"]]
    unknown = [int(c) for c in cfg["unknown_classes"]]
    if not known:
        raise ConfigError("known_classes must list at least one class")
    for name, cl in (("known_classes", known), ("unknown_classes", unknown)):
        if len(set(cl)) != len(cl):
            raise ConfigError(f"{name}={cl} repeats a class")
    if set(known) & set(unknown):
        raise ConfigError(f"known_classes {known} and unknown_classes {unknown} overlap: "
                          f"{sorted(set(known) & set(unknown))} cannot be both")
    if cfg["n_exc"] % len(known):
        raise ConfigError(f"n_exc={cfg['n_exc']} excitatory neurons cannot be split into {len(known)} equal segments "
                          f"(one per known class): choose n_exc as a multiple of {len(known)}")
    sets = list(cfg["test_sets"])
    if not sets:
        raise ConfigError(f"test_sets must name at least one of {', '.join(TEST_SETS)}")
    for s in sets:
        if s not in TEST_SETS:
            raise ConfigError(f"unknown test set {s!r}.{did_you_mean(str(s), TEST_SETS)} "
                              f"Test sets: {', '.join(TEST_SETS)}")
    if len(set(sets)) != len(sets):
        raise ConfigError(f"test_sets={sets} repeats a set")
    if "unknown" in sets and not unknown:
        raise ConfigError("test set 'unknown' needs unknown_classes")
    if cfg["tau_prun_ms"] < 0:
        raise ConfigError(f"tau_prun_ms must be > 0 ms, or 0 for the thesis' rule 5 × n_classes × 500 ms; "
                          f"got {cfg['tau_prun_ms']}")
    passes = cfg["passes"]
    if isinstance(passes, bool) or not isinstance(passes, (int, float)) or not passes > 0:
        raise ConfigError(f"passes must be a positive number of passes over the training images (12.5 for the "
                          f"original's 15,000 presentations of 1,200 images), got {passes!r}")
    k_p_train = check_kp(cfg["k_p_train"], "k_p_train")
    k_p_flush = check_kp(cfg["k_p_flush"], "k_p_flush")
    check_kp(cfg["k_p_test"], "k_p_test")
    for key, allowed in (("semantics", SEMANTICS), ("flush", FLUSH), ("test_mode", ("parallel", "sequential")),
                         ("test_start", TEST_START), ("tie_rule", ("strict", "thesis"))):
        if cfg[key] not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {cfg[key]!r}")
    check_decay_schedule(cfg["semantics"], k_p_train, k_p_flush, flush_mode(cfg))
    grace, _, _ = check_options(cfg["grace_ms"], cfg["protect"], cfg["floor"], cfg["semantics"])
    if grace and flush_mode(cfg) == "exact":
        raise ConfigError("grace_ms needs the Poisson flush (flush = 'poisson' or 'auto'): the exact flush applies "
                          "the thesis' formula without the grace")
    for key in ("flush_ms", "flush_rate_hz", "blur_sigma", "noise_divider"):
        if cfg[key] < 0:
            raise ConfigError(f"{key} must be ≥ 0, got {cfg[key]}")
    if cfg["flush_rate_hz"] > 63.75:
        raise ConfigError(f"flush_rate_hz must be ≤ 63.75 Hz (the rate of a 255 pixel), got {cfg['flush_rate_hz']}")
    if cfg["dt_ms"] <= 0:
        raise ConfigError(f"dt_ms must be a positive number of ms, got {cfg['dt_ms']}")
    if cfg["t_present_ms"] <= 0 or cfg["t_rest_ms"] < 0:
        raise ConfigError(f"t_present_ms must be > 0 and t_rest_ms ≥ 0, got {cfg['t_present_ms']}, {cfg['t_rest_ms']}")
    silent_flush = int(cfg["flush_ms"] / cfg["dt_ms"] + 0.5) == 0 or cfg["flush_rate_hz"] == 0
    if k_p_train == 0.0 and flush_mode(cfg) == "poisson" and silent_flush:
        raise ConfigError(f"with k_p_train = 0 the regularised model decays only at the flush, and a Poisson flush of "
                          f"flush_ms = {cfg['flush_ms']:g} at flush_rate_hz = {cfg['flush_rate_hz']:g} has no input "
                          f"spike (no decay at all): give it a duration and a rate, or use flush = 'exact'")


def flush_mode(cfg: Mapping[str, Any]) -> str:
    """The flush that runs: ``cfg["flush"]``, with ``"auto"`` resolved (see the module docs)."""
    if cfg["flush"] != "auto":
        return cfg["flush"]
    if cfg["semantics"] == "lazy":
        return "poisson"
    return "exact" if check_kp(cfg["k_p_train"], "k_p_train") == 0.0 else "none"


def check_decay_schedule(semantics: str, k_p_train: float, k_p_flush: float, flush: str) -> None:
    """A :class:`ConfigError` for a "with" model that would decay twice or not at all.

    * ``k_p_train = 0`` (the decay acts only at the flush) needs a flush at ``k_p_flush = 1``;
      with ``continuous`` semantics that flush must be ``"exact"``: a Poisson flush there
      would apply only its own 50 ms of decay, not the pending one.
    * ``continuous`` with ``k_p_train = 1`` has applied its decay as it went: an ``"exact"``
      flush at ``k_p_flush = 1`` would apply it a second time.
    """
    if k_p_train == 0.0:
        if k_p_flush == 0.0 or flush == "none":
            raise ConfigError(f"with k_p_train = 0 the regularised model decays only at the flush: it needs "
                              f"k_p_flush = 1 and a flush (poisson or exact), got k_p_flush = {k_p_flush:g} and "
                              f"flush = {flush!r} (no decay at all)")
        if semantics == "continuous" and flush != "exact":
            raise ConfigError(f"semantics = 'continuous' with k_p_train = 0 needs flush = 'exact' (or 'auto'): the "
                              f"one-shot decay of the pending time; a {flush!r} flush would apply only the decay of "
                              f"its own duration")
    elif semantics == "continuous" and flush == "exact" and k_p_flush == 1.0:
        raise ConfigError("semantics = 'continuous' with k_p_train = 1 has applied its decay during training: "
                          "flush = 'exact' with k_p_flush = 1 would apply it twice; use flush = 'auto' or 'none'")


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def gaussian_blur(x: np.ndarray, sigma: float, across_images: bool) -> np.ndarray:
    """Gaussian blur of ``x[N, 28, 28]`` (reflecting borders, kernel cut at 4σ); per image unless ``across_images``."""
    from scipy.ndimage import gaussian_filter  # scipy is a dependency of jax

    if sigma == 0:
        return x.copy()
    if across_images:
        return gaussian_filter(x, sigma=sigma)
    return gaussian_filter(x, sigma=(0, sigma, sigma))


def noise_sets(rng: np.random.Generator, n: int, target_mean: float, cfg: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``{"noise", "blurred"}``: ``float32[n, 784]`` in pixel units (0–255)."""
    div = cfg["noise_divider"]

    def match(u):  # u in [0, 1]
        scaled = u / div if div > 0 else u * (target_mean / max(float(u.mean()), 1e-12))
        return (255.0 * np.clip(scaled, 0.0, 1.0)).astype(np.float32).reshape(n, -1)

    out = {"noise": match(rng.random((n, 28, 28)))}
    b = gaussian_blur(rng.random((n, 28, 28)), cfg["blur_sigma"], cfg["blur_across_images"])
    axes = None if cfg["blur_across_images"] else (1, 2)
    lo, hi = b.min(axis=axes, keepdims=True), b.max(axis=axes, keepdims=True)
    b = (b - lo) / np.maximum(hi - lo, 1e-12)
    out["blurred"] = match(b)
    return out


def repeat_passes(x: np.ndarray, seg: np.ndarray, passes: float, rng: np.random.Generator):
    """The training sequence of ``passes`` passes over ``x[n, 784]`` (labels ``seg[n]``).

    The first pass keeps the given order; each further pass is a fresh permutation
    drawn from ``rng`` (the seed's own stream, so ``passes = 1`` draws nothing and
    leaves every other draw of the seed as it was). A fractional last pass takes
    the first images of its permutation: ``round(passes × n)`` presentations in all
    (12.5 passes over 1,200 images: 15,000, the original's count). Raises a
    :class:`ConfigError` when that is 0.
    """
    n = len(seg)
    total = int(round(float(passes) * n))
    if total < 1:
        raise ConfigError(f"passes={passes} over {n} training images gives no presentation")
    orders = [np.arange(n)] + [rng.permutation(n) for _ in range(-(-total // n) - 1)]
    order = np.concatenate(orders)[:total]
    return x[order], seg[order]


@dataclasses.dataclass(frozen=True)
class SeedData:
    """Per-seed arrays (leading axis = seed)."""

    train_x: np.ndarray  #: uint8 [S, P, 784]
    train_seg: np.ndarray  #: int32 [S, P]
    test_x: dict  #: set name -> float32 [S, n, 784]
    known_seg: np.ndarray  #: int32 [S, n] segments of the known test images
    mean_intensity: float  #: mean pixel of the training images, in [0, 1]


def prepare_data(cfg: Mapping[str, Any], seed_ids: Sequence[int], registry: Any) -> SeedData:
    """Load the data and draw, per seed, the training order and the four test sets."""
    from snnjax import data

    kw = {"data_dir": cfg["data_dir"] or None, "registry": registry}
    train = data.load(cfg["dataset"], "train", **kw)
    test = data.load(cfg["dataset"], "test", **kw)
    known = np.array([int(c) for c in cfg["known_classes"]])
    unknown = np.array([int(c) for c in cfg["unknown_classes"]])
    present = sorted(set(np.unique(train.labels)) & set(np.unique(test.labels)))
    missing = [int(c) for c in np.concatenate([known, unknown]) if c not in present]
    if missing:
        raise ConfigError(f"classes {missing} are not in dataset {cfg['dataset']!r}; it has classes {present}")
    mean = float(train.images.mean()) / 255.0
    sets = list(cfg["test_sets"])
    n_test = cfg["n_test"]

    def subset(ds, classes, rng, limit=None):
        keep = np.isin(ds.labels, classes)
        x = ds.images[keep].reshape(int(keep.sum()), -1)
        y = ds.labels[keep]
        order = rng.permutation(len(y))
        x, y = x[order][:limit], y[order][:limit]
        seg = np.array([int(np.nonzero(known == lab)[0][0]) if lab in known else -1 for lab in y], np.int32)
        return x, seg

    rows = []
    for i in seed_ids:
        rng = np.random.default_rng([cfg["seed"], i])
        tx, ts = subset(train, known, rng, cfg["n_train"] or None)
        tx, ts = repeat_passes(tx, ts, cfg["passes"], np.random.default_rng([cfg["seed"], i, 1]))
        kx, ks = subset(test, known, rng, n_test)
        ux, _ = subset(test, unknown, rng, n_test) if len(unknown) else (kx[:0], None)
        noise = noise_sets(rng, n_test, mean, cfg)
        rows.append((tx, ts, {"noise": noise["noise"], "blurred": noise["blurred"], "known": kx, "unknown": ux}, ks))
    n_distinct = len(rows[0][1]) / float(cfg["passes"])
    if cfg["n_train"] and n_distinct < cfg["n_train"] - 0.5:
        raise ConfigError(f"n_train={cfg['n_train']} but only {round(n_distinct)} training images of classes "
                          f"{known.tolist()} exist in {cfg['dataset']!r}")
    test_x = {}
    for s in sets:
        n = min(len(r[2][s]) for r in rows)
        test_x[s] = np.stack([r[2][s][:n] for r in rows]).astype(np.float32)
    n_known = min(len(r[3]) for r in rows)
    return SeedData(
        train_x=np.stack([r[0] for r in rows]).astype(np.uint8),
        train_seg=np.stack([r[1] for r in rows]),
        test_x=test_x,
        known_seg=np.stack([r[3][:n_known] for r in rows]),
        mean_intensity=mean,
    )


# --------------------------------------------------------------------------------------------
# the model and the programs
# --------------------------------------------------------------------------------------------


def build_model(cfg: Mapping[str, Any], registry: Any):
    """``(NetworkConfig, LearningRule, τ_prun)``: Method 2's network and rule chained with the regularizer."""
    n_classes = len(cfg["known_classes"])
    form = "vt-copy" if cfg["adaptive_threshold"] else "none"
    dt = cfg["dt_ms"]  # neuron model and encoder by name from the run's registry (as in supervised-stdp)
    exc = create_choice(registry, "neuron", cfg["neuron"], dt_ms=dt, threshold_form=form)
    inh = create_choice(registry, "neuron", cfg["inh_neuron"], dt_ms=dt)
    encoder = create_choice(registry, "encoder", cfg["encoder"], dt_ms=dt)
    netcfg = net.thesis_config(n_exc=cfg["n_exc"], dt_ms=dt, t_present_ms=cfg["t_present_ms"],
                               t_rest_ms=cfg["t_rest_ms"], exc=exc, inh=inh, input_encoder=encoder)
    # the segments' rules by name (with parameters) from the run's registry; two built-in trace rules merge
    kw = {"n_classes": n_classes, "target": choice_name(cfg["target_rule"]), "others": choice_name(cfg["other_rule"])}
    for role, key in (("target", "target_rule"), ("others", "other_rule")):
        if choice_params(cfg[key]):
            kw[f"{role}_params"] = choice_params(cfg[key])
    base = create_choice(registry, "rule", {"name": "segment-supervised", **kw}, registry=registry)
    image_ms = netcfg.t_present_ms + netcfg.t_rest_ms
    tau = resolve_tau_prun_ms(cfg["tau_prun_ms"] or None, n_classes, image_ms)
    options = {k: cfg[k] for k in ("grace_ms", "protect", "floor") if cfg[k] != DEFAULTS[k]}  # beyond the thesis
    reg = registry.create("regularizer", "use-it-or-lose-it", tau_prun_ms=tau, k_p=0.0, semantics=cfg["semantics"],
                          **options)
    return netcfg, chain(base, reg), tau


#: test images presented at once per network with ``test_mode = "parallel"`` (memory: each holds its
#: per-step input table and drive, ≈ 1 MB at dt 0.1 ms; all 300 at once for 64 networks took 12 GB)
TEST_BATCH = 25
#: ``fold_in`` data of the key of the silent slot before the parallel test presentations
REST_KEY = 0x7E57


def make_programs(netcfg, rule, tau: float, cfg: Mapping[str, Any]):
    """Per-network pure functions ``(train_chunk, flush, evaluate)``, batched over the networks by the run loop,
    and ``accuracy`` (host code: counts → known-set accuracy, %).

    ``evaluate(state, key, images)`` starts from ``state`` (the post-flush state) and, for parallel test
    presentations with ``test_start = "rested"``, first runs the silent slot (:func:`rest` inside).
    """
    n_classes = len(cfg["known_classes"])
    v_test = netcfg.exc.v_th_mv
    mode = flush_mode(cfg)
    steps = int(cfg["flush_ms"] / netcfg.dt_ms + 0.5)
    flush_cfg = dataclasses.replace(netcfg, t_present_ms=steps * netcfg.dt_ms, t_rest_ms=0.0,
                                    input_capacity=int(netcfg.n_input * steps * cfg["flush_rate_hz"]
                                                       * netcfg.dt_ms * 1e-3 * 1.3) + 512)
    enc = netcfg.encoder  # the pixel value the encoder turns into flush_rate_hz (Poisson: rate ∝ pixel)
    flush_pixel = getattr(enc, "pixel_max", 255.0) * cfg["flush_rate_hz"] / getattr(enc, "max_rate_hz",
                                                                                    netcfg.max_rate_hz)

    def train_chunk(state, key, images, segs):
        gates = net.segment_gates(segs, netcfg.n_exc, n_classes, state.w.dtype)
        state, out = net.present_many(state, images, key, netcfg, rule, learn=1.0, gates=gates)
        return state, out.exc_counts

    def flush(state, key, k_p):
        """The post-training flush; ``k_p`` (0 or 1) is this network's decay strength during it."""
        state = state._replace(rule_state=set_kp(state.rule_state, k_p))
        if mode == "poisson" and steps > 0:
            image = jnp.full((netcfg.n_input,), flush_pixel, state.w.dtype)
            state, _ = net.present(state, image, key, flush_cfg, rule, learn=0.0)
        elif mode == "exact":
            t = state.step.astype(state.w.dtype) * netcfg.dt_ms
            rs = state.rule_state
            w, new_reg = apply_pending(state.w, find_state(rs), t, tau)
            state = state._replace(w=w, rule_state=(rs[0], new_reg))
        return state

    # At test, learning is off (gain 0: the rules change no weight), and with k_p_test = 0 the regularizer
    # changes none either, so the weights are constant: the test presentations run without plasticity
    # (``plastic=False``: the rule is not run, the input drive is computed once per image).
    frozen = check_kp(cfg["k_p_test"]) == 0.0
    rest_steps = int(netcfg.t_rest_ms / netcfg.dt_ms + 0.5)
    rest_cfg = dataclasses.replace(netcfg, t_present_ms=rest_steps * netcfg.dt_ms, t_rest_ms=0.0)
    rested = cfg["test_mode"] == "parallel" and cfg["test_start"] == "rested" and rest_steps > 0

    def rest(state, key):
        """One silent slot of ``t_rest_ms`` after the flush: no input, learning off, no decay (k_p = 0)."""
        silence = jnp.zeros((netcfg.n_input,), state.w.dtype)
        return net.present(state, silence, key, rest_cfg, rule, learn=0.0, fixed_v2_mv=v_test, plastic=False)[0]

    def evaluate(state, key, images):
        state = state._replace(rule_state=set_kp(state.rule_state, cfg["k_p_test"]))
        if rested:
            state = rest(state, jax.random.fold_in(key, REST_KEY))
        if cfg["test_mode"] == "sequential":
            _, out = net.present_many(state, images, key, netcfg, rule, learn=0.0, fixed_v2_mv=v_test,
                                      plastic=not frozen)
        else:  # independent presentations, TEST_BATCH at a time (bounded memory, same keys per image)
            keys = jax.random.split(key, images.shape[0])
            out = net.present_each(state, images, keys, netcfg, rule, batch_size=min(TEST_BATCH, images.shape[0]),
                                   learn=0.0, fixed_v2_mv=v_test, plastic=not frozen)
        return out.exc_counts

    def accuracy(counts, segs):
        """% of the images whose segment is predicted, per network (any leading axes). Run op by op, not
        compiled as one program: a fused program rounds ``100·mean`` differently in the last bit (50.000004
        for 50), and these are the documented numbers."""
        return 100.0 * jnp.mean(predict(jnp.asarray(counts), n_classes, cfg["tie_rule"]) == jnp.asarray(segs),
                                axis=-1)

    return train_chunk, flush, evaluate, accuracy


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


def run(ctx: RunContext) -> RunResult:
    """Three phases of :attr:`RunContext.loop`: ``train`` (one chunk per ``train_chunk`` images), ``flush``
    (one chunk) and ``test`` (one chunk per test set); chunk ``c`` of the whole run (training chunks, the
    flush, the sets, counted on) draws from ``fold_in(run key, c)``."""
    cfg = ctx.config
    netcfg, rule, tau = build_model(cfg, ctx.registry)
    data = prepare_data(cfg, ctx.seed_ids, ctx.registry)
    S, M = ctx.n_seeds, len(MODELS)
    B = M * S  # tested networks: [without × S, with × S]
    sets = list(cfg["test_sets"])
    P = data.train_x.shape[1]
    C = cfg["train_chunk"]
    n_chunks = -(-P // C)
    train_chunk, flush, evaluate, accuracy = make_programs(netcfg, rule, tau, cfg)
    k_p_train = check_kp(cfg["k_p_train"])
    shared = k_p_train == 0.0  # both models are the same network until the flush: train it once per seed
    T = S if shared else B  # trained networks
    loop = ctx.loop
    v_train = loop.batched(train_chunk)
    v_flush = loop.batched(flush)
    v_eval = loop.batched(evaluate)

    def both(x):  # per-seed array -> per-network array (same seed for both models)
        x = np.asarray(x)
        return np.concatenate([x] * M, axis=0)

    init_keys, run_keys = loop.split(ctx.seed_keys(), 2)
    init_keys = jnp.concatenate([init_keys] * M)
    run_keys = jnp.concatenate([run_keys] * M)
    k_p_flush = jnp.asarray(np.repeat([0.0, check_kp(cfg["k_p_flush"])], S))

    def init(k, kp):
        st = net.init_network(k, netcfg, rule)
        return st._replace(rule_state=set_kp(st.rule_state, kp))

    tested = loop.batched(init)(init_keys, jnp.asarray(np.repeat([0.0, k_p_train], S)))
    trained = jax.tree_util.tree_map(lambda x: x[:T], tested)
    totals = np.full((B, len(sets)), np.nan)  # spikes per set [B, n_sets]
    acc = np.full((B,), np.nan)  # known-set accuracy [B]
    # progress: one count over the run's chunks (training chunks, the flush, the test sets)
    n_total, unit = n_chunks + 1 + len(sets), "chunks (training, flush, test sets)"

    def train(c, carry):
        """Training chunk ``c``; the carry: the trained networks [T] and the excitatory spikes per training
        image, mean over each chunk [B, n_chunks]."""
        trained, train_rate = carry[0], np.array(carry[1])
        lo, hi = c * C, min(P, (c + 1) * C)
        images = data.train_x[:, lo:hi] if shared else both(data.train_x[:, lo:hi])
        segs = data.train_seg[:, lo:hi] if shared else both(data.train_seg[:, lo:hi])
        trained, counts = v_train(trained, loop.fold(run_keys, c)[:T], jnp.asarray(images), jnp.asarray(segs))
        rate = np.asarray(jnp.mean(jnp.sum(counts, axis=-1), axis=-1))
        train_rate[:, c] = both(rate) if shared else rate
        ctx.partial = _result(totals, acc, data, cfg, S, train_rate)
        return trained, train_rate

    trained, train_rate = loop.phase("train", n_chunks, train, (trained, np.full((B, n_chunks), np.nan)),
                                     unit=unit, report=lambda done: (done, n_total))

    def flush_all(_, tested):
        """The flush: the trained networks (split into the two models when trained once) at their k_p."""
        tested = split_models(trained, M) if shared else trained
        ctx.partial = _result(totals, acc, data, cfg, S, train_rate)
        return v_flush(tested, loop.fold(run_keys, n_chunks), k_p_flush)

    tested = loop.phase("flush", 1, flush_all, tested, unit=unit, report=lambda done: (n_chunks + done, n_total))

    def test(j, carry):
        """Test set ``j`` (chunk ``n_chunks + 1 + j`` of the run); the carry: spikes per set and accuracy."""
        totals, acc = np.array(carry[0]), np.array(carry[1])
        name = sets[j]
        counts = v_eval(tested, loop.fold(run_keys, n_chunks + 1 + j), jnp.asarray(both(data.test_x[name])))
        totals[:, j] = np.asarray(jnp.sum(counts, axis=(1, 2)))
        if name == "known":
            acc[:] = np.asarray(accuracy(counts, both(data.known_seg)))
        ctx.partial = _result(totals, acc, data, cfg, S, train_rate)
        return totals, acc

    totals, acc = loop.phase("test", len(sets), test, (totals, acc), unit=unit,
                             report=lambda done: (n_chunks + 1 + done, n_total))
    totals, acc = np.asarray(totals), np.asarray(acc)
    result = _result(totals, acc, data, cfg, S, train_rate)
    result.extra["tau_prun_ms"] = tau
    result.figures.extend(_figures(ctx, result, tested, cfg, S))
    return result


def split_models(trained, n_models: int = len(MODELS)):
    """The per-seed networks trained once (``k_p_train = 0``) as ``n_models`` identical copies:
    ``[S, ...] → [n_models × S, ...]`` on every leaf, models outermost (``[without × S, with × S]``)."""
    return jax.tree_util.tree_map(lambda x: jnp.concatenate([x] * n_models, axis=0), trained)


def _result(totals, acc, data: SeedData, cfg, S: int, train_rate=None) -> RunResult:
    sets = list(cfg["test_sets"])
    metrics: dict[str, np.ndarray] = {}
    for j, name in enumerate(sets):
        n = data.test_x[name].shape[1]
        wo, wi = totals[:S, j], totals[S:, j]
        metrics[f"{name}_total_without"] = wo
        metrics[f"{name}_total_with"] = wi
        metrics[f"{name}_per_image_without"] = wo / n
        metrics[f"{name}_per_image_with"] = wi / n
        with np.errstate(divide="ignore", invalid="ignore"):
            metrics[f"{name}_fraction"] = np.where(wo > 0, wi / wo, np.nan)
            metrics[f"{name}_reduction"] = np.where(wi > 0, wo / wi, np.nan)
    if "known" in sets:
        metrics["accuracy_without"] = acc[:S]
        metrics["accuracy_with"] = acc[S:]
        metrics["accuracy_change"] = acc[S:] - acc[:S]
        # Trivial baselines on the same images: the seed's distinct training images (its first pass) and
        # its known-class test images, segment indices as labels.
        n_distinct = min(data.train_x.shape[1], int(round(data.train_x.shape[1] / float(cfg["passes"]))))
        known_x = data.test_x["known"]
        metrics.update(baselines_per_seed(data.train_x[:, :n_distinct], data.train_seg[:, :n_distinct],
                                          known_x, data.known_seg[:, :known_x.shape[1]]))
    extra = {
        "test_sets": sets,
        "models": list(MODELS),
        "n_images_per_set": {s: int(data.test_x[s].shape[1]) for s in sets},
        "training_images": int(data.train_x.shape[1]),
        "mean_intensity": data.mean_intensity,
        "flush": flush_mode(cfg),
        "passes": float(cfg["passes"]),
        "shared_training": check_kp(cfg["k_p_train"]) == 0.0,
    }
    if train_rate is not None:
        # excitatory spikes per training image, mean over each chunk of `train_chunk` images: [seed][chunk]
        extra["train_spikes_per_image"] = {m: np.asarray(train_rate[i * S:(i + 1) * S]).tolist()
                                           for i, m in enumerate(MODELS)}
        extra["train_chunk"] = int(cfg["train_chunk"])
    return RunResult(metrics=metrics, extra=extra)


def _figures(ctx: RunContext, result: RunResult, state, cfg, S: int) -> list[str]:
    from snnjax import plots

    sets = list(cfg["test_sets"])
    out = []
    series = {f"{m} regularization": np.stack([result.metrics[f"{s}_per_image_{m}"] for s in sets], axis=1)
              for m in MODELS}
    out.append(str(plots.grouped_bars(ctx.out_dir / "responses.png", sets, series,
                                      ylabel="excitatory spikes per image", log=True,
                                      title=f"use it or lose it ({cfg['semantics']}), mean ± std over {S} seeds")))
    w = np.asarray(state.w)
    np.savez_compressed(ctx.out_dir / "weights.npz", without=w[:S], with_=w[S:])
    out.append(str(plots.receptive_fields(ctx.out_dir / "receptive_fields.png",
                                          {"without (seed 0)": w[0], "with (seed 0)": w[S]})))
    return out


def use_it_or_lose_it() -> Experiment:
    """Thesis Method 3: use-it-or-lose-it decay; responses to noise, known and unknown classes."""
    return Experiment(name="use-it-or-lose-it", description=use_it_or_lose_it.__doc__.splitlines()[0],
                      defaults=DEFAULTS, run=run, validate=validate, thesis=THESIS)
