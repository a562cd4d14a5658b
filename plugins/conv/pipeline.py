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

Every step is a per-seed function made into a program over all seeds by the run's loop
(:meth:`snnjax.loop.RunLoop.batched`, the pipeline's ``loop``): vmapped over the seeds, the seed
axis sharded over the devices, the seed-independent inputs (the front end's cache, the labels)
``shared``, compiled ahead of time once per input shape and kept on the pipeline (one program per
step name: a run's arms with the same network share one pipeline and so its compiled programs;
:attr:`ConvPipeline.compile_s` records how long each compile took, the loop's ``timing`` the
run's total).

For the Kheradpisheh network (no decision layer) :meth:`~ConvPipeline.readout` trains the
optax softmax readout on the layer-2 features instead.
"""

from __future__ import annotations

import functools
import hashlib
import json
import inspect
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from snnjax.errors import ConfigError, InputError
from snnjax.plugins import choice_name, choice_params, create_choice
from snnjax.loop import Program, RunLoop
from snnjax.plasticity import LearningRule, chain, row_local_holds

from . import frontend
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

#: Filter rows a frozen layer's product is padded to where one seed would be alone in it (CPU):
#: XLA's CPU product (JAX 0.10) sums each potential in one chain over the ``C·kh·kw`` terms, in
#: order, from 51 weight rows up — as it does for two or more seeds' filters side by side — and in
#: another order below (:func:`~.layers.conv_latency`). More rows cost time and change nothing
#: (51 rather than 64: one seed's layer-1 inference 1.06× faster, docs/performance.md).
ALONE_MIN_ROWS = 51

#: Config keys of ``conv-mnist`` choosing the network's parts by name through the run's registry
#: (``snnjax.config.plugin_key``: a name, a TOML table ``[layer_rule] name = ..., param = ...`` or
#: ``--set layer_rule.a_plus=...``). The numeric keys of :data:`NETWORK_DEFAULTS` fill the parameters
#: a chosen factory takes and the choice does not set (:func:`plugin_context`).
PLUGIN_KEYS: dict[str, tuple[str, str]] = {
    "encoder": ("encoder", "dog-latency"),
    "inhibition": ("inhibition", "k-wta"),
    "layer_rule": ("rule", "spyketorch-stdp"),
    "decision_rule": ("rule", "r-stdp"),
}

#: What the network needs of the plugin a key of :data:`PLUGIN_KEYS` chooses (``snnjax.config.plugin_key``'s
#: ``check``: refused while the config is checked).
PLUGIN_CHECKS: dict[str, Callable[[Any], None]] = {"encoder": frontend.check_latency_encoder}


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


def network_from_config(cfg: Mapping[str, Any], registry: Any = None) -> N.NetworkSpec:
    """The :class:`~.networks.NetworkSpec` named by ``cfg["network"]`` with its k / radius keys.

    With ``registry`` and an ``inhibition`` choice in ``cfg``, the STDP layers' winner selection is
    that plugin, built once per layer with ``k`` / ``radius`` from ``k1`` / ``radius1`` and ``k2`` /
    ``radius2`` where its factory takes them and the choice does not set them.
    """
    spec = N.network(cfg["network"], k1=cfg["k1"], r1=cfg["radius1"], k2=cfg["k2"], r2=cfg["radius2"],
                     timesteps=cfg["timesteps"], conv_impl=cfg.get("conv_impl", "dot"))
    if registry is not None and "inhibition" in cfg:
        spec = N.with_inhibitions(spec, [create_choice(registry, "inhibition", cfg["inhibition"], k=cfg[f"k{i}"],
                                                       radius=cfg[f"radius{i}"]) for i in (1, 2)])
    return spec


def plugin_context(cfg: Mapping[str, Any], n_train: int) -> dict[str, dict[str, Any]]:
    """Per plugin key of :data:`PLUGIN_KEYS`, the parameters the numeric config keys give its factory.

    ``layer_rule``: ``a_plus`` / ``a_minus`` / ``schedule_every`` / ``max_a_plus`` from ``stdp_a_plus``,
    ``stdp_a_minus``, ``stdp_every`` (0 → None), ``stdp_max_a_plus``; ``decision_rule``: ``reward`` /
    ``punish`` / ``batch_size`` / ``adaptive_int`` from ``rstdp_reward``, ``rstdp_punish``,
    ``rstdp_batch`` (0 → ``n_train``), ``adaptive_int``; ``encoder``: the network's DoG bank
    (``dog``, ``padding``) and ``timesteps``. (``inhibition``: see :func:`network_from_config`.)
    """
    spec = N.network(cfg["network"], timesteps=cfg["timesteps"])
    return {
        "layer_rule": dict(a_plus=float(cfg["stdp_a_plus"]), a_minus=float(cfg["stdp_a_minus"]),
                           schedule_every=int(cfg["stdp_every"]) or None, max_a_plus=float(cfg["stdp_max_a_plus"])),
        "decision_rule": dict(reward=tuple(float(v) for v in cfg["rstdp_reward"]),
                              punish=tuple(float(v) for v in cfg["rstdp_punish"]),
                              batch_size=int(cfg["rstdp_batch"]) or int(n_train), adaptive_int=float(cfg["adaptive_int"])),
        "encoder": dict(dog=spec.dog, padding=spec.dog_padding, timesteps=spec.timesteps),
    }


def _factory(registry: Any, kind: str, choice: Any, context: Mapping[str, Any]) -> tuple[Callable[..., Any], dict]:
    """``(factory, params)`` of a checked plugin choice: ``factory(**params)`` builds it through
    ``registry``; ``params`` are the choice's, over the ``context`` values its factory takes."""
    name, params = choice_name(choice), choice_params(choice)
    try:
        takes = inspect.signature(registry.get(kind, name)).parameters
    except (TypeError, ValueError):
        takes = {}
    merged = {k: v for k, v in context.items() if k in takes and k not in params}
    merged.update(params)
    return functools.partial(registry.create, kind, name), merged


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


def digest(images: np.ndarray) -> str:
    """A short content digest of an image array (the front-end cache key)."""
    h = hashlib.sha256()
    h.update(str(images.shape).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()[:24]


_MEMORY_CACHE: dict[tuple, np.ndarray] = {}


def keeps_weights_non_negative(rule: LearningRule) -> bool:
    """Whether ``rule`` declares that it keeps weights ≥ 0 (a ``weight_range`` with ``low >= 0``)."""
    return rule.weight_range is not None and rule.weight_range[0] >= 0


class ConvPipeline:
    """Layer-wise training and evaluation of one conv network over many seeds (see the module docstring).

    Args:
        spec: the network (:func:`~.networks.mozafari2019` / :func:`~.networks.kheradpisheh2018`).
        n_classes: outputs of the decision map (feature ``f`` votes for class ``f // (maps / n_classes)``).
        stdp: keyword arguments of :func:`~.stdp.spyketorch_stdp` for layers 1 and 2.
        rstdp: keyword arguments of :func:`~.stdp.r_stdp` for the decision layer (``batch_size``
            included; :meth:`rstdp_rule` may override some per call).
        cache_dir: directory for the on-disk front-end cache (``None``: memory only).
        stdp_factory, rstdp_factory: build the rules of layers 1–2 and of the decision layer from
            ``stdp`` / ``rstdp`` (default :func:`~.stdp.spyketorch_stdp`, :func:`~.stdp.r_stdp`; a
            plugin chosen by name: see :func:`pipeline_from_config`).
        encoder: the front end (:func:`~.frontend.latency_maps`; ``None``: the network's own), named
            by ``encoder_tag`` in the front-end cache key.
        loop: the run's :class:`~snnjax.loop.RunLoop` (``ctx.loop``), which batches, shards and
            compiles every program; ``None`` (scripts, tests): a :meth:`~snnjax.loop.RunLoop.local` one.
    """

    def __init__(self, spec: N.NetworkSpec, n_classes: int = 10, stdp: Mapping[str, Any] | None = None,
                 rstdp: Mapping[str, Any] | None = None, cache_dir: str | Path | None = None,
                 loop: RunLoop | None = None, *, stdp_factory: Callable[..., LearningRule] = spyketorch_stdp,
                 rstdp_factory: Callable[..., LearningRule] = r_stdp, encoder: Any = None, encoder_tag: str = ""):
        if spec.decision is not None and spec.decision.out_maps < n_classes:
            raise ConfigError(f"the decision layer has {spec.decision.out_maps} maps, fewer than n_classes={n_classes}")
        self.spec = spec
        self.n_classes = int(n_classes)
        self.T = spec.timesteps
        self.stdp_params = dict(stdp or {})
        self.rstdp_params = dict(rstdp or {})
        #: the layer and decision rules' factories (``stdp`` / ``rstdp`` are their keyword arguments)
        self.stdp_factory, self.rstdp_factory = stdp_factory, rstdp_factory
        self.stdp = stdp_factory(**self.stdp_params)
        if spec.decision is not None:
            self.rstdp_rule()  # a decision rule its factory refuses fails here, before anything is traced
        #: the front end (``None``: the network's DoG + latency encoder); ``encoder_tag`` names it in the cache key
        self.encoder, self.encoder_tag = encoder, str(encoder_tag)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.loop = loop if loop is not None else RunLoop.local()
        self._programs: dict[tuple, Program] = {}
        #: seconds spent compiling, per program name (summed over shapes)
        self.compile_s: dict[str, float] = {}

    # ------------------------------------------------------------------ compile once per shape

    def _run(self, name: str, fn: Callable, *args, shared: tuple[int, ...] = (), library_reductions: bool = True):
        """``fn`` (written for one seed) over every seed: the loop's program ``name``, made once per pipeline.

        ``shared``: positions of the arguments without a seed axis. ``fn`` must not close over values
        that change between calls with the same ``name`` (pass them as arguments).
        ``library_reductions=False`` (inference and the decision layer's epochs): their many small
        reductions per image compiled inline (``RunLoop.batched``). Those programs reduce only
        spike counts (integers) and maxima, which no order changes; the STDP layers' epochs keep
        the library's reductions, because their k-WTA scores are float sums over time steps
        whose rounding the library's order decides (:func:`~.inhibition.winner_scores`).
        """
        prog = self._programs.get((name, shared))
        if prog is None:
            prog = self._programs[(name, shared)] = self.loop.batched(fn, shared=shared, name=f"conv/{name}",
                                                                      library_reductions=library_reductions)
        before = self.loop.timing["compile_s"]
        out = prog(*args)
        if self.loop.timing["compile_s"] != before:
            self.compile_s[name] = self.compile_s.get(name, 0.0) + self.loop.timing["compile_s"] - before
        return out

    # ------------------------------------------------------------------ front end

    def encode(self, images: np.ndarray) -> np.ndarray:
        """First-spike maps ``(N, C, H, W)`` uint8 of ``images`` ``(N, H, W)`` (cached by content)."""
        images = np.asarray(images)
        if images.ndim != 3:
            raise InputError(f"expected images (N, H, W), got shape {images.shape}")
        spec = self.spec
        key = (spec.dog, spec.dog_padding, self.T, digest(images), frontend.MAPS_VERSION) + (
            (self.encoder_tag,) if self.encoder_tag else ())
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
        lat = frontend.latency_maps(self.encoder if self.encoder is not None else spec.encoder(), images)
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

        return self._run("init", one, keys)

    def rstdp_rule(self, **overrides: Any) -> LearningRule:
        """The decision layer's R-STDP rule with this pipeline's parameters (``overrides`` win)."""
        return self.rstdp_factory(**{**self.rstdp_params, **overrides})

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
        if layer.conv_impl == "events" and not self.events_exact(weight, make_rule):
            layer = layer._replace(conv_impl="dot")  # the same results, computed densely
            name = (name or f"layer{index + 1}") + "-dot"
        shared = cache.ndim == 4
        T, stdp = self.T, self.stdp
        builder = make_rule or (lambda *a: stdp)

        def one(k, w, s, c, args):
            return N.train_layer(k, w, s, c, layer, builder(*args), T)

        return self._run(name or f"layer{index + 1}", one, keys, weight, state, jnp.asarray(cache), rule_args,
                         shared=(3,) if shared else ())

    def events_exact(self, weight: jax.Array, make_rule: Callable[..., LearningRule] | None = None) -> bool:
        """Whether an epoch with ``conv_impl = "events"`` computes what the dense form computes (up to
        rounding): its potentials never decrease in time, i.e. the weights are ≥ 0 now (checked here)
        and stay so (the layer rule declares a ``weight_range`` with ``low >= 0``, as ``spyketorch-stdp``
        with ``lb >= 0`` does; a rule built per epoch by ``make_rule`` is not looked into).
        Otherwise :meth:`train_layer_epoch` runs the dot form."""
        return make_rule is None and keeps_weights_non_negative(self.stdp) and bool(np.min(np.asarray(weight)) >= 0)

    def layer_step(self, index: int, rule: LearningRule):
        """``step(w, st, latency) -> (w, st)``: one STDP image of layer ``index`` (0 or 1) under ``rule``
        (``conv_impl = "events"`` only with the pipeline's own non-negative rule, else the dot form)."""
        layer = self.spec.layers[index]
        if layer.conv_impl == "events" and not keeps_weights_non_negative(rule):
            layer = layer._replace(conv_impl="dot")
        return N.layer_train_step(layer, rule, self.T)

    def propagate(self, index: int, weight: jax.Array, cache: jax.Array, batch_size: int = 64,
                  chunk: int | None = None) -> jax.Array:
        """Run frozen layer ``index`` over a cache: per-seed output caches ``(S, N, C', H', W')`` uint8.

        Blocks of ``batch_size`` images, ``chunk`` at a time (:func:`~.networks.layer_outputs`). On a
        shared cache the seeds' filters meet in one product; where one seed would be alone in it (one
        seed per device, on CPU), zero filters pad it to :data:`ALONE_MIN_ROWS` rows, so that its outputs are those of the
        same seed beside others (:func:`~.layers.conv_latency`).
        """
        layer = self.spec.layers[index]
        shared = cache.ndim == 4
        T = self.T
        mesh = self.loop.mesh
        per_device = weight.shape[0] // (mesh.devices.size if mesh is not None else 1)
        pad = ALONE_MIN_ROWS if shared and per_device < 2 and jax.default_backend() == "cpu" else 0
        name = (f"propagate{index + 1}" + ("" if batch_size == 64 else f"-b{batch_size}")
                + ("" if chunk is None else f"-c{chunk}") + (f"-f{pad}" if pad else ""))
        return self._run(name, lambda w, c: N.layer_outputs(w, c, layer, T, batch_size, chunk, pad),
                         weight, jnp.asarray(cache), shared=(1,) if shared else (), library_reductions=False)

    def features(self, w1: jax.Array, w2: jax.Array, lat0: np.ndarray) -> jax.Array:
        """Layer-2 outputs per seed ``(S, N, C, H, W)`` of a front-end cache (layers 1 and 2 frozen)."""
        return self.propagate(1, w2, self.propagate(0, w1, lat0))

    # ------------------------------------------------------------------ decision layer

    def decision_epoch(self, keys: jax.Array, w3: jax.Array, st3: Any, cache: jax.Array, labels: jax.Array, *,
                       name: str = "decision", make_rule: Callable[..., LearningRule] | None = None,
                       rule_args: Any = (), row_local: bool = True):
        """One R-STDP epoch of the decision layer for every seed: ``(w3, st3, stats)``.

        ``stats`` (:class:`~.networks.DecisionStats`) counts correct / wrong / silent training
        decisions. ``make_rule(*rule_args)`` builds the per-seed rule inside the vmapped program
        (so ``rule_args`` may be per-seed arrays: freezing masks, per-weight ranges, keys); its
        state ``st3`` must match. By default the plain R-STDP rule. ``name`` tells programs with
        different ``make_rule`` apart (one compile per name and shape): ``make_rule`` must not
        close over values that change between calls (pass them in ``rule_args``).

        When the rule declares a row-local form (:attr:`~snnjax.plasticity.LearningRule.row_local`:
        R-STDP changes only the winner's kernel, chained bounds and masks follow it) and every
        seed's kernels satisfy it, each image reads and writes only the winner's kernel
        (:func:`~.networks.train_decision_rows`), with the same bits; should a changed kernel
        leave the form's conditions, the epoch runs again through ``update``. ``row_local=False``
        always runs ``update``.
        """
        layer, T, n_classes = self.spec.decision, self.T, self.n_classes
        if layer is None:
            raise ConfigError(f"network {self.spec.name!r} has no decision layer (it uses a readout)")
        base = self.rstdp_rule()
        builder = make_rule or (lambda *a: base)
        shared = (3, 4) if cache.ndim == 4 else (4,)
        cache, labels = jnp.asarray(cache), jnp.asarray(labels, jnp.int32)
        if row_local:
            def holds(w, args):  # false for a rule that declares no row-local form
                form = builder(*args).row_local
                return jnp.bool_(False) if form is None else row_local_holds(form, w)

            if bool(np.all(np.asarray(self._run(f"{name}-holds", holds, w3, rule_args, library_reductions=False)))):
                def rows(k, w, s, c, y, args):
                    return N.train_decision_rows(k, w, s, c, y, layer, builder(*args), T, n_classes)

                w, st, stats, ok = self._run(f"{name}-rows", rows, keys, w3, st3, cache, labels, rule_args,
                                             shared=shared, library_reductions=False)
                if bool(np.all(np.asarray(ok))):
                    return w, st, stats

        def one(k, w, s, c, y, args):
            return N.train_decision(k, w, s, c, y, layer, builder(*args), T, n_classes)

        return self._run(name, one, keys, w3, st3, cache, labels, rule_args, shared=shared, library_reductions=False)

    def decisions(self, w3: jax.Array, cache: jax.Array, batch_size: int = 64, chunk: int | None = None) -> jax.Array:
        """Decisions ``(S, N)`` of the decision layer (``-1`` = silence); blocks of ``batch_size``
        images, ``chunk`` at a time (:func:`~.networks.decision_outputs`)."""
        layer, T, n_classes = self.spec.decision, self.T, self.n_classes

        def one(w, c):
            return N.decision_outputs(w, c, layer, T, n_classes, batch_size, chunk)

        name = "decide" + ("" if batch_size == 64 else f"-b{batch_size}") + ("" if chunk is None else f"-c{chunk}")
        return self._run(name, one, w3, jnp.asarray(cache), shared=(1,) if cache.ndim == 4 else (),
                         library_reductions=False)

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

        acc, silent = self._run(f"readout{steps}", one, keys, jnp.asarray(train_cache), jnp.asarray(test_cache),
                                jnp.asarray(train_labels, jnp.int32), jnp.asarray(test_labels, jnp.int32), shared=(3, 4))
        return Evaluation(np.asarray(acc), np.asarray(silent))


# ---------------------------------------------------------------------------- helpers


def pipeline_from_config(cfg: Mapping[str, Any], n_classes: int, n_train: int, loop: RunLoop | None = None,
                         registry: Any = None) -> ConvPipeline:
    """A :class:`ConvPipeline` from the :data:`NETWORK_DEFAULTS` keys of ``cfg``.

    ``rstdp_batch = 0`` adapts the R-STDP rates once per epoch of ``n_train`` images (the thesis).
    ``loop``: the run's loop (``ctx.loop``), see :class:`ConvPipeline`. With ``registry`` (the run's),
    the keys of :data:`PLUGIN_KEYS` present in ``cfg`` choose the encoder, the STDP layers' inhibition,
    the layer rule (layers 1 and 2, one state each) and the decision rule by name, with parameters,
    over the values of :func:`plugin_context`; without, the thesis' parts.
    """
    spec = network_from_config(cfg, registry)
    context = plugin_context(cfg, n_train)
    stdp, rstdp = context["layer_rule"], context["decision_rule"]
    plugins: dict[str, Any] = {}
    if registry is not None:  # the parts chosen by name (conv-mnist's PLUGIN_KEYS) through the run's registry
        for key, role in (("layer_rule", "stdp"), ("decision_rule", "rstdp")):
            if key in cfg:
                plugins[f"{role}_factory"], params = _factory(registry, "rule", cfg[key], context[key])
                stdp, rstdp = (params, rstdp) if role == "stdp" else (stdp, params)
        if "encoder" in cfg and cfg["encoder"] != PLUGIN_KEYS["encoder"][1]:
            plugins["encoder"] = create_choice(registry, "encoder", cfg["encoder"], **context["encoder"])
            plugins["encoder_tag"] = json.dumps(cfg["encoder"], sort_keys=True, default=str)
    return ConvPipeline(spec, n_classes, stdp, rstdp, cfg.get("cache_dir") or None, loop=loop, **plugins)


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
    """Per-seed keys of one epoch of one phase (``fold_in`` of the seed keys: resumable); in a run,
    ``ctx.loop.fold(keys, tag, epoch)`` gives the same keys."""
    return jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, tag), epoch))(keys)


def timed(fn: Callable, *args, **kwargs) -> tuple[Any, float]:
    """``(fn(*args), seconds)`` with the result's arrays ready."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


__all__ = ["ConvPipeline", "NetState", "Evaluation", "NETWORK_DEFAULTS", "NETWORKS", "validate_network",
           "network_from_config", "pipeline_from_config", "epoch_keys", "convergence", "spike_density", "timed", "digest", "ConvActivity", "chain"]
