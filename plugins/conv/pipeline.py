"""The task pipeline of the convolutional STDP networks, shared by ``conv-mnist`` and ``continual``.

One :class:`ConvPipeline` holds a network spec and its learning-rule parameters and runs, for
many seeds at once (every array below has a leading seed axis ``S`` unless it is a shared
dataset cache):

1. **front end** (:meth:`ConvPipeline.encode`): DoG + latency coding of a set of images, run
   once and cached as ``uint8`` first-spike maps ``(N, C, H, W)`` (in memory, keyed by a digest
   of the images, and optionally on disk in ``cache_dir``). It does not depend on the seed;
2. **layer-wise training** (:meth:`~ConvPipeline.train_layer_epoch`) of the STDP layers 1 and 2
   on cached waves: one ``lax.scan`` over the shuffled images, vmapped over the seeds (each seed
   has its own weights, learning-rate schedule and image order);
3. **propagation** (:meth:`~ConvPipeline.propagate`): the frozen layers run once over a set
   of cached waves, giving per-seed caches ``(S, N, C', H', W')`` of the next layer's input;
4. **decision layer** R-STDP epochs (:meth:`~ConvPipeline.decision_epoch`, optionally with
   extra transforms chained after R-STDP: freezing masks, per-weight ranges, noise) and
   **evaluation** (:meth:`~ConvPipeline.evaluate`: accuracy and silence rate, silence counted as
   wrong).

Every jitted program is compiled ahead of time, once per input shape, and kept for the
process (shared by pipelines with the same network and rule parameters;
:attr:`ConvPipeline.compile_s` records how long each compile took), so repeated epochs reuse one
executable and the epoch wall times measured by the callers exclude compilation (the first call
of a fresh executable still carries a one-time warm-up of a few seconds on CPU).

For the Kheradpisheh network (no decision layer) :meth:`~ConvPipeline.readout` trains the
optax softmax readout on the layer-2 features instead.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.errors import ConfigError, InputError
from snnjax.plasticity import LearningRule, chain

from . import networks as N
from .stdp import ConvActivity, r_stdp, spyketorch_stdp

#: Config keys of the front end / network shared by the conv experiments, with their defaults.
NETWORK_DEFAULTS: dict[str, Any] = {
    "network": "mozafari",
    "k1": 5,
    "radius1": 3,
    "k2": 8,
    "radius2": 1,
    "timesteps": 15,
    "stdp_a_plus": 0.004,
    "stdp_a_minus": -0.003,
    "stdp_every": 500,
    "stdp_max_a_plus": 0.15,
    "rstdp_reward": [0.004, -0.003],
    "rstdp_punish": [-0.004, 0.0005],
    "rstdp_batch": 0,
    "adaptive_int": 1.0,
    "readout_steps": 300,
    "cache_dir": "",
    "conv_impl": "dot",
}

NETWORKS = ("mozafari", "kheradpisheh")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def validate_network(cfg: Mapping[str, Any]) -> None:
    """Check the network keys of :data:`NETWORK_DEFAULTS` (before anything is compiled)."""
    if cfg["network"] not in NETWORKS:
        raise ConfigError(f"network must be one of {', '.join(NETWORKS)}, got {cfg['network']!r}")
    for key in ("k1", "k2", "timesteps"):
        if not _is_int(cfg[key]) or cfg[key] < 1:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]!r}")
    for key in ("radius1", "radius2"):
        if not _is_int(cfg[key]) or cfg[key] < 0:
            raise ConfigError(f"{key} (lateral inhibition radius) must be a non-negative integer, got {cfg[key]!r}")
    if not _is_int(cfg["stdp_every"]) or cfg["stdp_every"] < 0:
        raise ConfigError(f"stdp_every must be >= 0 (0 = no doubling schedule), got {cfg['stdp_every']!r}")
    if not cfg["stdp_a_plus"] > 0 or not cfg["stdp_a_minus"] < 0:
        raise ConfigError(f"STDP rates need stdp_a_plus > 0 and stdp_a_minus < 0, got "
                          f"{cfg['stdp_a_plus']} and {cfg['stdp_a_minus']}")
    for key in ("rstdp_reward", "rstdp_punish"):
        if len(cfg[key]) != 2:
            raise ConfigError(f"{key} must be a pair (a_ltp, a_ltd), got {cfg[key]!r}")
    if not _is_int(cfg["rstdp_batch"]) or cfg["rstdp_batch"] < 0:
        raise ConfigError(f"rstdp_batch must be >= 0 (0 = the whole training set, as in the thesis), got {cfg['rstdp_batch']!r}")
    if not cfg["adaptive_int"] > 0:
        raise ConfigError(f"adaptive_int must be > 0, got {cfg['adaptive_int']!r}")
    N.check_conv_impl(cfg.get("conv_impl", "dot"))
    if not _is_int(cfg["readout_steps"]) or cfg["readout_steps"] < 1:
        raise ConfigError(f"readout_steps must be a positive integer, got {cfg['readout_steps']!r}")


def network_from_config(cfg: Mapping[str, Any]) -> N.NetworkSpec:
    """The :class:`~.networks.NetworkSpec` named by ``cfg["network"]`` with its k / radius keys."""
    return N.network(cfg["network"], k1=cfg["k1"], r1=cfg["radius1"], k2=cfg["k2"], r2=cfg["radius2"],
                     timesteps=cfg["timesteps"], conv_impl=cfg.get("conv_impl", "dot"))


class NetState(NamedTuple):
    """Weights and rule states of every layer, each with a leading seed axis."""

    w1: jax.Array
    w2: jax.Array
    w3: jax.Array  #: decision layer (Mozafari) or a ``(S, 0)`` placeholder (Kheradpisheh)
    st1: Any
    st2: Any
    st3: Any


class Evaluation(NamedTuple):
    """Per-seed test results (percent)."""

    accuracy: np.ndarray
    silence: np.ndarray
    decisions: np.ndarray | None = None  #: ``(S, N)`` decisions (−1 = silence); None for the readout


def _signature(args: Sequence[Any]) -> tuple:
    leaves, tree = jax.tree_util.tree_flatten(args)
    return (str(tree),) + tuple((tuple(np.shape(x)), str(getattr(x, "dtype", type(x)))) for x in leaves)


def digest(images: np.ndarray) -> str:
    """A short content digest of an image array (the front-end cache key)."""
    h = hashlib.sha256()
    h.update(str(images.shape).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()[:24]


_MEMORY_CACHE: dict[tuple, np.ndarray] = {}
#: compiled programs, shared by every pipeline with the same network and rule parameters
_EXECUTABLES: dict[tuple, Any] = {}


class ConvPipeline:
    """Layer-wise training and evaluation of one conv network over many seeds (see the module docstring).

    Args:
        spec: the network (:func:`~.networks.mozafari2019` / :func:`~.networks.kheradpisheh2018`).
        n_classes: outputs of the decision map (feature ``f`` votes for class ``f // (maps / n_classes)``).
        stdp: keyword arguments of :func:`~.stdp.spyketorch_stdp` for layers 1 and 2.
        rstdp: keyword arguments of :func:`~.stdp.r_stdp` for the decision layer (``batch_size``
            included; :meth:`rstdp_rule` may override some per call).
        cache_dir: directory for the on-disk front-end cache (``None``: memory only).
    """

    def __init__(self, spec: N.NetworkSpec, n_classes: int = 10, stdp: Mapping[str, Any] | None = None,
                 rstdp: Mapping[str, Any] | None = None, cache_dir: str | Path | None = None):
        if spec.decision is not None and spec.decision.out_maps < n_classes:
            raise ConfigError(f"the decision layer has {spec.decision.out_maps} maps, fewer than n_classes={n_classes}")
        self.spec = spec
        self.n_classes = int(n_classes)
        self.T = spec.timesteps
        self.stdp_params = dict(stdp or {})
        self.rstdp_params = dict(rstdp or {})
        self.stdp = spyketorch_stdp(**self.stdp_params)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._identity = (spec, self.n_classes, tuple(sorted(self.stdp_params.items())),
                          tuple(sorted(self.rstdp_params.items())))
        #: seconds spent compiling, per program name (summed over shapes)
        self.compile_s: dict[str, float] = {}

    # ------------------------------------------------------------------ compile once per shape

    def run_program(self, name: str, fn: Callable, *args):
        """Run ``jax.jit(fn)(*args)``, compiled ahead of time once per (name, shapes).

        ``fn`` must not close over values that change between calls with the same ``name``.
        """
        key = (self._identity, name) + _signature(args)
        exe = _EXECUTABLES.get(key)
        if exe is None:
            t0 = time.perf_counter()
            exe = jax.jit(fn).lower(*args).compile()
            self.compile_s[name] = self.compile_s.get(name, 0.0) + time.perf_counter() - t0
            _EXECUTABLES[key] = exe
        return exe(*args)

    # ------------------------------------------------------------------ front end

    def encode(self, images: np.ndarray) -> np.ndarray:
        """First-spike maps ``(N, C, H, W)`` uint8 of ``images`` ``(N, H, W)`` (cached by content)."""
        images = np.asarray(images)
        if images.ndim != 3:
            raise InputError(f"expected images (N, H, W), got shape {images.shape}")
        spec = self.spec
        key = (spec.dog, spec.dog_padding, self.T, digest(images))
        if key in _MEMORY_CACHE:
            return _MEMORY_CACHE[key]
        path = None
        if self.cache_dir is not None:
            tag = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
            path = self.cache_dir / f"dog-latency-{tag}.npy"
            if path.is_file():
                lat = np.load(path)
                _MEMORY_CACHE[key] = lat
                return lat
        lat = spec.encoder().latency_batch(images)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, lat)
            tmp.replace(path)
        _MEMORY_CACHE[key] = lat
        return lat

    # ------------------------------------------------------------------ initial state

    def init(self, keys: jax.Array) -> NetState:
        """Initial weights (N(0.8, 0.05), one draw per seed) and rule states, per seed."""
        spec = self.spec
        stdp = self.stdp

        def one(key):
            ws = N.init_weights(key, spec)
            w3 = ws[2] if spec.decision is not None else jnp.zeros((0,), jnp.float32)
            st3 = self.rstdp_rule().init(w3) if spec.decision is not None else ()
            return NetState(ws[0], ws[1], w3, stdp.init(ws[0]), stdp.init(ws[1]), st3)

        return self.run_program("init", jax.vmap(one), keys)

    def rstdp_rule(self, **overrides: Any) -> LearningRule:
        """The decision layer's R-STDP rule with this pipeline's parameters (``overrides`` win)."""
        return r_stdp(**{**self.rstdp_params, **overrides})

    # ------------------------------------------------------------------ layers 1 and 2

    def train_layer_epoch(self, index: int, keys: jax.Array, weight: jax.Array, state: Any, cache: jax.Array, *,
                          name: str | None = None, make_rule: Callable[..., LearningRule] | None = None,
                          rule_args: Any = ()):
        """One STDP epoch of layer ``index`` (0 or 1) for every seed: ``(weight, state)``.

        ``cache`` is the layer's input: shared ``(N, C, H, W)`` or per seed ``(S, N, C, H, W)``.
        ``keys`` ``(S,)`` shuffle each seed's image order. ``make_rule(*rule_args)`` builds the
        per-seed rule inside the vmapped program (e.g. ``chain(pipe.stdp, freeze(mask))`` with a
        per-seed mask in ``rule_args``); ``state`` must match it. By default the pipeline's STDP
        rule. As in :meth:`decision_epoch`, ``name`` tells programs with different ``make_rule``
        apart.
        """
        layer = self.spec.layers[index]
        shared = cache.ndim == 4
        T, stdp = self.T, self.stdp
        builder = make_rule or (lambda *a: stdp)

        def one(k, w, s, c, args):
            return N.train_layer(k, w, s, c, layer, builder(*args), T)

        fn = jax.vmap(one, in_axes=(0, 0, 0, None if shared else 0, 0))
        return self.run_program(name or f"layer{index + 1}", fn, keys, weight, state, jnp.asarray(cache), rule_args)

    def layer_step(self, index: int, rule: LearningRule):
        """``step(w, st, latency) -> (w, st)``: one STDP image of layer ``index`` (0 or 1) under ``rule``."""
        return N.layer_train_step(self.spec.layers[index], rule, self.T)

    def propagate(self, index: int, weight: jax.Array, cache: jax.Array, batch_size: int = 64) -> jax.Array:
        """Run frozen layer ``index`` over a cache: per-seed output caches ``(S, N, C', H', W')`` uint8."""
        layer = self.spec.layers[index]
        shared = cache.ndim == 4
        T = self.T
        fn = jax.vmap(lambda w, c: N.layer_outputs(w, c, layer, T, batch_size), in_axes=(0, None if shared else 0))
        return self.run_program(f"propagate{index + 1}", fn, weight, jnp.asarray(cache))

    def features(self, w1: jax.Array, w2: jax.Array, lat0: np.ndarray) -> jax.Array:
        """Layer-2 outputs per seed ``(S, N, C, H, W)`` of a front-end cache (layers 1 and 2 frozen)."""
        return self.propagate(1, w2, self.propagate(0, w1, lat0))

    # ------------------------------------------------------------------ decision layer

    def decision_epoch(self, keys: jax.Array, w3: jax.Array, st3: Any, cache: jax.Array, labels: jax.Array, *,
                       name: str = "decision", make_rule: Callable[..., LearningRule] | None = None,
                       rule_args: Any = ()):
        """One R-STDP epoch of the decision layer for every seed: ``(w3, st3, stats)``.

        ``stats`` (:class:`~.networks.DecisionStats`) counts correct / wrong / silent training
        decisions. ``make_rule(*rule_args)`` builds the per-seed rule inside the vmapped program
        (so ``rule_args`` may be per-seed arrays: freezing masks, per-weight ranges, keys); its
        state ``st3`` must match. By default the plain R-STDP rule. ``name`` tells programs with
        different ``make_rule`` apart (one compile per name and shape): ``make_rule`` must not
        close over values that change between calls (pass them in ``rule_args``).
        """
        layer, T, n_classes = self.spec.decision, self.T, self.n_classes
        if layer is None:
            raise ConfigError(f"network {self.spec.name!r} has no decision layer (it uses a readout)")
        base = self.rstdp_rule()
        builder = make_rule or (lambda *a: base)
        shared = cache.ndim == 4

        def one(k, w, s, c, y, args):
            return N.train_decision(k, w, s, c, y, layer, builder(*args), T, n_classes)

        fn = jax.vmap(one, in_axes=(0, 0, 0, None if shared else 0, None, 0))
        return self.run_program(name, fn, keys, w3, st3, jnp.asarray(cache), jnp.asarray(labels, jnp.int32), rule_args)

    def decisions(self, w3: jax.Array, cache: jax.Array, batch_size: int = 64) -> jax.Array:
        """Decisions ``(S, N)`` of the decision layer (``-1`` = silence)."""
        layer, T, n_classes = self.spec.decision, self.T, self.n_classes

        def one(w, c):
            return jax.lax.map(lambda lat: N.decision_forward(layer, w, lat, T, n_classes)[0], c, batch_size=batch_size)

        return self.run_program("decide", jax.vmap(one, in_axes=(0, None if cache.ndim == 4 else 0)), w3, jnp.asarray(cache))

    def evaluate(self, w3: jax.Array, cache: jax.Array, labels: np.ndarray) -> Evaluation:
        """Test accuracy and silence rate per seed (percent; silence counts as wrong)."""
        dec = np.asarray(self.decisions(w3, cache))
        labels = np.asarray(labels)
        return Evaluation(100.0 * np.mean(dec == labels[None], axis=1), 100.0 * np.mean(dec < 0, axis=1), dec)

    def decision_step(self, rule: LearningRule):
        """``step(w, st, latency, label) -> (w, st, decision)``: one R-STDP image of the decision layer."""
        layer, T, n_classes = self.spec.decision, self.T, self.n_classes

        def step(w, st, lat, label):
            decision, pot_last, win = N.decision_forward(layer, w, lat, T, n_classes)
            x = N._input_wave(layer, lat, T)
            w, st = rule.update(w, st, ConvActivity(x, jnp.sign(pot_last)[None], win, decision, label))
            return w, st, decision

        return step

    # ------------------------------------------------------------------ readout (no decision layer)

    def readout(self, keys: jax.Array, train_cache: jax.Array, train_labels: np.ndarray, test_cache: jax.Array,
                test_labels: np.ndarray, steps: int = 300) -> Evaluation:
        """Train the optax softmax readout on layer-2 features and test it (per seed)."""
        T, n = self.T, self.n_classes

        def one(k, ctr, cte, ytr, yte):
            ftr, fte = N.readout_features(ctr, T), N.readout_features(cte, T)
            params = N.train_readout(k, ftr, ytr, n, steps=steps)
            acc = N.readout_accuracy(params, fte, yte)
            return 100.0 * acc, 100.0 * jnp.mean((fte.sum(-1) == 0).astype(jnp.float32))

        acc, silent = self.run_program(f"readout{steps}", jax.vmap(one, in_axes=(0, 0, 0, None, None)), keys,
                                jnp.asarray(train_cache), jnp.asarray(test_cache),
                                jnp.asarray(train_labels, jnp.int32), jnp.asarray(test_labels, jnp.int32))
        return Evaluation(np.asarray(acc), np.asarray(silent))


# ---------------------------------------------------------------------------- helpers


def pipeline_from_config(cfg: Mapping[str, Any], n_classes: int, n_train: int) -> ConvPipeline:
    """A :class:`ConvPipeline` from the :data:`NETWORK_DEFAULTS` keys of ``cfg``.

    ``rstdp_batch = 0`` adapts the R-STDP rates once per epoch of ``n_train`` images (the thesis).
    """
    spec = network_from_config(cfg)
    stdp = dict(a_plus=float(cfg["stdp_a_plus"]), a_minus=float(cfg["stdp_a_minus"]),
                schedule_every=int(cfg["stdp_every"]) or None, max_a_plus=float(cfg["stdp_max_a_plus"]))
    rstdp = dict(reward=tuple(float(v) for v in cfg["rstdp_reward"]), punish=tuple(float(v) for v in cfg["rstdp_punish"]),
                 batch_size=int(cfg["rstdp_batch"]) or int(n_train), adaptive_int=float(cfg["adaptive_int"]))
    return ConvPipeline(spec, n_classes, stdp, rstdp, cfg.get("cache_dir") or None)


def convergence(weight: jax.Array, lb: float = 0.0, ub: float = 1.0) -> np.ndarray:
    """Kheradpisheh et al.'s convergence of a layer, per seed: ``mean((w - lb)(ub - w)) / (ub - lb)²``.

    ``weight`` has a leading seed axis. 0.25 when every weight sits in the middle of its range
    (about 0.16 for the N(0.8, 0.05) initial weights of a [0, 1] layer), 0 when every weight is at a
    bound; Kheradpisheh et al. stop training a layer below 0.01. A layer far above that has not
    converged: its output spike maps are dense and carry little about the image.
    """
    w = np.asarray(weight, np.float64)
    c = (w - lb) * (ub - w) / (ub - lb) ** 2
    return c.reshape(c.shape[0], -1).mean(axis=1)


def spike_density(cache: jax.Array, timesteps: int) -> np.ndarray:
    """Per seed, the fraction of neurons of a per-seed cache ``(S, N, C, H, W)`` that spike at all."""
    out = jax.vmap(lambda c: jnp.mean((c < timesteps).astype(jnp.float32)))(jnp.asarray(cache))
    return np.asarray(out, np.float64)


def epoch_keys(keys: jax.Array, tag: int, epoch: int) -> jax.Array:
    """Per-seed keys of one epoch of one phase (``fold_in`` of the seed keys: resumable)."""
    return jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, tag), epoch))(keys)


def timed(fn: Callable, *args, **kwargs) -> tuple[Any, float]:
    """``(fn(*args), seconds)`` with the result's arrays ready."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


__all__ = ["ConvPipeline", "NetState", "Evaluation", "NETWORK_DEFAULTS", "NETWORKS", "validate_network",
           "network_from_config", "pipeline_from_config", "epoch_keys", "convergence", "spike_density", "timed", "digest", "ConvActivity", "chain"]
