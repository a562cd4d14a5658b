"""Static configuration of the Diehl & Cook family network: :class:`NetworkConfig` and its presets.

Times in ms, rates in Hz, weights in the units of the conductances they add to.

The network's parts are objects given to it, as chosen by name from the run's registry
(``registry.create("neuron", …)``, ``registry.create("encoder", …)``): the excitatory and
inhibitory neuron models (``exc``, ``inh``: :class:`snnjax.neurons.ScheduledNeuronModel`) and the
input encoder (``input_encoder``: a rate encoder). Left out, they are the built-in plugins'
defaults (``conductance-lif``, ``inhibitory-lif``, ``poisson``).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import jax
import jax.numpy as jnp

from snnjax.config import PluginKey, plugin_key
from snnjax.errors import ConfigError
from snnjax.neurons import ScheduledNeuronModel

from ..encoders import poisson
from ..neurons import conductance_lif, dc15_inhibitory_lif, dc15_lif, inhibitory_lif

RECORDABLE = ("exc_v", "exc_ge", "exc_gi", "exc_vt", "exc_theta", "inh_v", "inh_ge", "exc_spikes", "inh_spikes")


def state_fields(model: Any) -> tuple[str, ...]:
    """The field names of the state ``model.init`` returns (a ``NamedTuple``).

    Read from ``init``'s declared return type, so checking a config traces nothing; a model
    that does not declare it is evaluated abstractly (``jax.eval_shape``).
    """
    try:
        declared = typing.get_type_hints(type(model).init).get("return")
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: evaluate instead
        declared = None
    fields = getattr(declared, "_fields", None)
    if fields is None:
        fields = getattr(jax.eval_shape(lambda: model.init(1)), "_fields", ())
    return tuple(fields)


def _check_neuron(model: Any, role: str, conductances: tuple[str, ...]) -> None:
    if not isinstance(model, ScheduledNeuronModel):
        raise ConfigError(f"the {role} neuron model {type(model).__name__} cannot run in this network: it needs "
                          f"init/integrate/threshold/reset (snnjax.neurons.ScheduledNeuronModel)")
    fields = state_fields(model)
    missing = [g for g in conductances if g not in fields]
    if missing:
        raise ConfigError(f"the {role} neuron model {type(model).__name__} cannot run in this network: its state has "
                          f"no conductance{'s' if len(missing) > 1 else ''} {', '.join(missing)} for the synapses to add to; choose a "
                          f"conductance-based model (e.g. conductance-lif, dc15-lif, inhibitory-lif)")


def check_exc_model(model: Any) -> None:
    """What the network needs of its excitatory model: Brian 2's slots and conductances ``ge``, ``gi``."""
    _check_neuron(model, "excitatory", ("ge", "gi"))


def check_inh_model(model: Any) -> None:
    """What the network needs of its inhibitory model: Brian 2's slots and a conductance ``ge`` (from S2)."""
    _check_neuron(model, "inhibitory", ("ge",))


def check_rate_encoder(encoder: Any) -> None:
    """What the network needs of its input encoder: ``probabilities(image, scale)`` per step and input."""
    if not callable(getattr(encoder, "probabilities", None)):
        raise ConfigError(f"the encoder {type(encoder).__name__} cannot drive this network: it needs "
                          f"probabilities(image, scale) -> spike probability per step and input "
                          f"(a rate encoder such as 'poisson')")


def part_keys(exc: str, inh: str, encoder: str = "poisson") -> dict[str, PluginKey]:
    """The config keys of an experiment on this network that choose its parts by name: ``neuron``
    (excitatory), ``inh_neuron`` and ``encoder``, each with its default and what the network needs of
    it (:func:`check_exc_model`, :func:`check_inh_model`, :func:`check_rate_encoder`)."""
    return {"neuron": plugin_key("neuron", exc, check_exc_model),
            "inh_neuron": plugin_key("neuron", inh, check_inh_model),
            "encoder": plugin_key("encoder", encoder, check_rate_encoder)}


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Static configuration of the network (hashable: a static argument of ``jax.jit``).

    Attributes:
        n_input, n_exc: population sizes (``n_inh = n_exc``).
        dt_ms, t_present_ms, t_rest_ms: time step; input phase; silent rest phase.
        exc, inh: neuron models (:class:`snnjax.neurons.ScheduledNeuronModel` whose state has the
            conductances ``ge``, ``gi`` the synapses add to, e.g.
            :class:`~snnjax_plugins.neurons.ConductanceLIF`); their ``dt_ms`` must be the network's.
        w_ei, w_ie: S2 (exc→inh) and S3 (inh→exc) weights.
        s2_delay_max_ms, s3_delay_max_ms: delays drawn ``U(0, max)`` per synapse (0 = none).
        w_init: ``"uniform"`` (``U(w_init_low, w_init_high)``) or ``"dc15"`` (``(U(0,1) + 0.01)·0.3``).
        norm_target: if set, each excitatory neuron's input weights are scaled to this column
            sum before every presentation (D&C: 78).
        max_rate_hz: input rate at pixel 255 (at intensity ``intensity_start``) of the default encoder.
        input_encoder: the input encoder (``None``: ``poisson(max_rate_hz, dt_ms)``). The network samples
            its input spikes itself (exactly, :func:`~snnjax_plugins.encoders.sample_table`) from the
            encoder's ``probabilities(image, scale) -> float[n_input]``, the spike probability per step
            of each input (``scale``: the D&C intensity ratio); an encoder with a ``dt_ms`` must have the
            network's.
        intensity_start, intensity_step, min_spikes, max_repeats: D&C's rule: while a
            presentation gives fewer than ``min_spikes`` excitatory spikes, raise the
            intensity by ``intensity_step`` and present again (at most ``max_repeats`` extra
            times; ``min_spikes = 0`` turns it off). Rates scale as ``intensity/intensity_start``.
        reset_between_images: reset neuron states (not weights, not traces) before each image.
        k_in, k_post, k_inh: lengths of the padded per-step event lists: input spikes, excitatory
            spikes (general plasticity path only) and inhibitory spikes (only with S3 delays).
            Events beyond them are **not** processed but counted in
            ``PresentationOutput.dropped_events``; a run is exact when that count is 0 (see
            :func:`check_dropped` and ``docs/performance.md`` for the probabilities).
        k_in_chunk: the first this many entries of the per-step input list are processed every
            step (``None``: ``⌈k_in/3⌉``); the rest only in steps where it holds a spike (in any
            seed, under ``vmap``). Performance only: the results do not depend on it.
        input_capacity: candidate cells drawn at a time by the sparse sampler (``None``: half the
            worst case at ``intensity_start``); performance only, the sampler is exact for any value.
        input_sampler: ``"sparse"`` (exact thinning sampler) or ``"dense"`` (one uniform per
            input and step).
        plasticity: ``"auto"`` (deferred on_post updates when the rule supports them, see
            the rule's declared ``fast`` form, :mod:`snnjax.deferred`; else the general path), ``"lazy"`` (require
            them) or ``"reference"`` (the general path: the rule's ``prepare``/``update`` every step).
        lazy_block_ms: with deferred updates, every weight row is brought up to date at least this
            often (bounds the exponents; performance only).
    """

    n_input: int = 784
    n_exc: int = 30
    dt_ms: float = 0.1
    t_present_ms: float = 350.0
    t_rest_ms: float = 150.0
    exc: Any = conductance_lif(dt_ms=0.1)
    inh: Any = inhibitory_lif(dt_ms=0.1)
    w_ei: float = 3.0
    w_ie: float = 0.1
    s2_delay_max_ms: float = 10.0
    s3_delay_max_ms: float = 5.0
    w_init: str = "uniform"
    w_init_low: float = 0.0
    w_init_high: float = 0.05
    norm_target: float | None = None
    max_rate_hz: float = 63.75
    input_encoder: Any = None
    intensity_start: float = 2.0
    intensity_step: float = 1.0
    min_spikes: int = 0
    max_repeats: int = 10
    reset_between_images: bool = False
    k_in: int = 16
    k_post: int = 4
    k_inh: int = 4
    k_in_chunk: int | None = None
    input_capacity: int | None = None
    input_sampler: str = "sparse"
    plasticity: str = "auto"
    lazy_block_ms: float = 25.0

    def __post_init__(self):
        if self.k_in_chunk is not None and not (isinstance(self.k_in_chunk, int) and self.k_in_chunk > 0):
            raise ConfigError(f"k_in_chunk must be a positive integer or None, got {self.k_in_chunk!r}")
        for name in ("n_input", "n_exc", "k_in", "k_post", "k_inh"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v > 0):
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not self.dt_ms > 0:
            raise ConfigError(f"dt_ms must be a positive number of ms, got {self.dt_ms!r}")
        for name in ("t_present_ms", "t_rest_ms", "s2_delay_max_ms", "s3_delay_max_ms", "max_rate_hz"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be ≥ 0, got {getattr(self, name)!r}")
        check_exc_model(self.exc)
        check_inh_model(self.inh)
        if self.reset_between_images:
            missing = [f for f in ("vt", "theta") if f not in state_fields(self.exc)]
            if missing:
                raise ConfigError(f"reset_between_images keeps the learned thresholds, but the exc neuron model "
                                  f"{type(self.exc).__name__}'s state has no {', '.join(missing)}")
        for name in ("exc", "inh"):
            m = getattr(self, name)
            if abs(m.dt_ms - self.dt_ms) > 1e-12:
                raise ConfigError(f"the {name} neuron model has dt_ms={m.dt_ms} but the network dt_ms={self.dt_ms}")
        enc = self.input_encoder
        if enc is not None:
            check_rate_encoder(enc)
            enc_dt = getattr(enc, "dt_ms", None)
            if enc_dt is not None and abs(enc_dt - self.dt_ms) > 1e-12:
                raise ConfigError(f"the encoder has dt_ms={enc_dt} but the network dt_ms={self.dt_ms}")
        if self.w_init not in ("uniform", "dc15"):
            raise ConfigError(f"w_init must be 'uniform' or 'dc15', got {self.w_init!r}")
        if self.input_sampler not in ("sparse", "dense"):
            raise ConfigError(f"input_sampler must be 'sparse' or 'dense', got {self.input_sampler!r}")
        if self.plasticity not in ("auto", "lazy", "reference"):
            raise ConfigError(f"plasticity must be 'auto', 'lazy' or 'reference', got {self.plasticity!r}")
        if not self.lazy_block_ms > 0:
            raise ConfigError(f"lazy_block_ms must be > 0, got {self.lazy_block_ms!r}")
        if self.norm_target is not None and not self.norm_target > 0:
            raise ConfigError(f"norm_target must be > 0 or None, got {self.norm_target!r}")
        if self.min_spikes < 0 or self.max_repeats < 0:
            raise ConfigError("min_spikes and max_repeats must be ≥ 0")

    # derived static quantities
    @property
    def n_inh(self) -> int:
        return self.n_exc

    @property
    def steps_present(self) -> int:
        return int(self.t_present_ms / self.dt_ms + 0.5)

    @property
    def steps_total(self) -> int:
        return int((self.t_present_ms + self.t_rest_ms) / self.dt_ms + 0.5)

    @property
    def ring2(self) -> int:
        return delay_steps_static(self.s2_delay_max_ms, self.dt_ms) + 1

    @property
    def ring3(self) -> int:
        return delay_steps_static(self.s3_delay_max_ms, self.dt_ms) + 1

    @property
    def capacity(self) -> int:
        if self.input_capacity is not None:
            return int(self.input_capacity)
        rate = getattr(self.encoder, "max_rate_hz", self.max_rate_hz)
        p = min(1.0, rate * self.dt_ms * 1e-3)
        return int(0.5 * self.steps_present * self.n_input * p) + 512

    @property
    def encoder(self) -> Any:
        """The input encoder: ``input_encoder``, or the Poisson encoder at ``max_rate_hz``."""
        if self.input_encoder is not None:
            return self.input_encoder
        return poisson(max_rate_hz=self.max_rate_hz, dt_ms=self.dt_ms)


def delay_steps_static(d_ms: float, dt_ms: float) -> int:
    """Brian's spike-queue rounding, ``int(d/dt + 0.5)`` (half-up)."""
    return int(d_ms / dt_ms + 0.5)


def delay_steps(d_ms, dt_ms: float):
    """Array form of :func:`delay_steps_static` (int32)."""
    return jnp.floor(jnp.asarray(d_ms) / dt_ms + 0.5).astype(jnp.int32)


def thesis_config(**overrides) -> NetworkConfig:
    """Thesis (Antonov, Brian 2 notebook): 30 exc, dt 0.1 ms, Euler, vt-copy threshold, delayed S2/S3.

    ``exc``/``inh`` (neuron models) and ``input_encoder`` may be given (e.g. built by name from the run's
    registry); left out: ``conductance-lif`` / ``inhibitory-lif`` at ``dt_ms`` and ``poisson``.
    """
    dt = overrides.get("dt_ms", 0.1)
    exc, inh = overrides.pop("exc", None), overrides.pop("inh", None)
    exc = conductance_lif(dt_ms=dt) if exc is None else exc
    inh = inhibitory_lif(dt_ms=dt) if inh is None else inh
    base = dict(n_exc=30, dt_ms=dt, exc=exc, inh=inh, w_ei=3.0, w_ie=0.1, s2_delay_max_ms=10.0, s3_delay_max_ms=5.0,
                w_init="uniform", w_init_low=0.0, w_init_high=0.05, norm_target=None, min_spikes=0, k_in=24, k_inh=8, k_post=30)
    return NetworkConfig(**{**base, **overrides})


def dc15_config(n_exc: int = 100, **overrides) -> NetworkConfig:
    """Diehl & Cook 2015: N exc, dt 0.5 ms, exponential Euler, θ threshold, normalisation to 78, repeat if < 5 spikes.

    ``exc``/``inh``/``input_encoder`` as in :func:`thesis_config` (left out: ``dc15-lif``,
    ``dc15-inhibitory-lif``, ``poisson``).
    """
    dt = overrides.get("dt_ms", 0.5)
    exc, inh = overrides.pop("exc", None), overrides.pop("inh", None)
    exc = dc15_lif(dt_ms=dt) if exc is None else exc
    inh = dc15_inhibitory_lif(dt_ms=dt) if inh is None else inh
    base = dict(n_exc=n_exc, dt_ms=dt, exc=exc, inh=inh, w_ei=10.4, w_ie=17.0, s2_delay_max_ms=0.0, s3_delay_max_ms=0.0,
                w_init="dc15", norm_target=78.0, min_spikes=5, max_repeats=10, intensity_start=2.0, intensity_step=1.0,
                k_in=48, k_post=4)
    return NetworkConfig(**{**base, **overrides})
