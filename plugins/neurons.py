r"""Built-in neuron models: current-based LIF and conductance-based LIF (excitatory/inhibitory).

Every model is a frozen dataclass of static parameters (hashable, so it can be a
static argument of ``jax.jit``) with pure methods on an explicit NamedTuple state:

* ``init(n, dtype=None) -> state``
* ``integrate(state) -> (state, not_refractory)`` — the state update of one step
  (Brian 2's ``groups`` slot);
* ``threshold(state, not_refractory) -> spikes`` (``thresholds`` slot);
* ``reset(state, spikes) -> state`` (``resets`` slot);
* ``step(state, *inputs) -> (state, spikes)`` — the three phases in Brian's order,
  with the synaptic inputs of the step added between threshold and reset (the
  ``synapses`` slot), for a neuron driven from outside.

A network that runs plasticity between the phases calls them one by one.

Units: times in ms, voltages in mV; conductances ``ge``, ``gi`` are
dimensionless, in units of the leak conductance.

Refractoriness follows Brian 2 exactly: a neuron that spiked at step ``m`` is
refractory at step ``n`` while ``n − m < timestep(refractory, dt)`` with
``timestep(t, dt) = int((t + 1e-3·dt)/dt)``. The state keeps ``since``, the
number of steps since the last spike (saturating), instead of a spike time.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax.numpy as jnp

from snnjax.errors import ConfigError
from snnjax.hookspecs import hookimpl

#: ``since`` value of a neuron that never spiked (saturation bound).
NEVER = 1 << 30

THRESHOLD_FORMS = ("none", "vt-copy", "vt", "theta")
METHODS = ("euler", "exponential_euler")


def timestep(t_ms: float, dt_ms: float) -> int:
    """Brian 2's ``timestep(t, dt)``: whole steps in ``t`` (robust to rounding)."""
    return int((t_ms + 1e-3 * dt_ms) / dt_ms)


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a positive number of ms, got {value!r}")


def _float_dtype(dtype):
    return jnp.zeros((), dtype=float).dtype if dtype is None else jnp.dtype(dtype)


def _advance_since(since):
    return jnp.minimum(since + 1, NEVER)


# ----------------------------------------------------------------------------------------------
# Current-based LIF
# ----------------------------------------------------------------------------------------------


class LIFState(NamedTuple):
    """State of a current-based LIF population.

    Attributes:
        v: membrane potential, mV.
        i_syn: synaptic current expressed as a voltage drive, mV.
        since: steps since the last spike (``NEVER`` if none), int32.
    """

    v: jnp.ndarray
    i_syn: jnp.ndarray
    since: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class LIF:
    """Current-based LIF: ``τ_m dv/dt = v_rest − v + i_syn``, ``τ_syn di_syn/dt = −i_syn``.

    Input (mV) is added to ``i_syn`` in the synapse slot; ``tau_syn_ms = 0`` makes
    it an instantaneous voltage jump instead. Both are integrated exactly
    (exponential decay factors). Spike: ``v > v_th`` and not refractory; reset
    ``v = v_reset``.
    """

    dt_ms: float = 0.1
    tau_m_ms: float = 20.0
    tau_syn_ms: float = 5.0
    v_rest_mv: float = -65.0
    v_reset_mv: float = -65.0
    v_th_mv: float = -52.0
    v_init_mv: float = -65.0
    refractory_ms: float = 2.0
    hold_when_refractory: bool = True

    def __post_init__(self):
        _positive("dt_ms", self.dt_ms)
        _positive("tau_m_ms", self.tau_m_ms)
        if not (self.tau_syn_ms == 0 or self.tau_syn_ms > 0):
            raise ConfigError(f"tau_syn_ms must be ≥ 0 ms, got {self.tau_syn_ms!r}")
        if self.refractory_ms < 0:
            raise ConfigError(f"refractory_ms must be ≥ 0 ms, got {self.refractory_ms!r}")

    @property
    def ref_steps(self) -> int:
        return timestep(self.refractory_ms, self.dt_ms)

    def init(self, n: int, dtype=None) -> LIFState:
        dt = _float_dtype(dtype)
        return LIFState(jnp.full((n,), self.v_init_mv, dt), jnp.zeros((n,), dt), jnp.full((n,), NEVER, jnp.int32))

    def integrate(self, s: LIFState):
        since = _advance_since(s.since)
        not_ref = since >= self.ref_steps
        dt = s.v.dtype
        a = jnp.asarray(math.exp(-self.dt_ms / self.tau_m_ms), dt)
        v_new = s.v * a + (s.i_syn + self.v_rest_mv) * (1 - a)
        v = jnp.where(not_ref, v_new, s.v) if self.hold_when_refractory else v_new
        if self.tau_syn_ms > 0:
            i_syn = s.i_syn * jnp.asarray(math.exp(-self.dt_ms / self.tau_syn_ms), dt)
        else:
            i_syn = jnp.zeros_like(s.i_syn)
        return LIFState(v, i_syn, since), not_ref

    def threshold(self, s: LIFState, not_ref):
        return (s.v > self.v_th_mv) & not_ref

    def add_input(self, s: LIFState, current_mv):
        if self.tau_syn_ms > 0:
            return s._replace(i_syn=s.i_syn + current_mv)
        return s._replace(v=s.v + current_mv)

    def reset(self, s: LIFState, spikes):
        return LIFState(jnp.where(spikes, jnp.asarray(self.v_reset_mv, s.v.dtype), s.v), s.i_syn, jnp.where(spikes, 0, s.since))

    def step(self, s: LIFState, current_mv=0.0):
        """One step in Brian's order: integrate → threshold → input → reset."""
        s, not_ref = self.integrate(s)
        spikes = self.threshold(s, not_ref)
        s = self.add_input(s, current_mv)
        return self.reset(s, spikes), spikes


# ----------------------------------------------------------------------------------------------
# Conductance-based LIF with adaptive threshold
# ----------------------------------------------------------------------------------------------


class CondLIFState(NamedTuple):
    """State of a conductance-based LIF population.

    Attributes:
        v: membrane potential, mV.
        ge, gi: excitatory / inhibitory conductances (units of the leak conductance).
        vt: adaptive threshold, mV (forms ``vt-copy`` and ``vt``; else carried unchanged).
        theta: threshold offset, mV (form ``theta``; else carried unchanged).
        v2: the threshold copied at an image onset, mV (form ``vt-copy``).
        since: steps since the last spike (``NEVER`` if none), int32.
    """

    v: jnp.ndarray
    ge: jnp.ndarray
    gi: jnp.ndarray
    vt: jnp.ndarray
    theta: jnp.ndarray
    v2: jnp.ndarray
    since: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class ConductanceLIF:
    """Conductance LIF: ``τ_m dv/dt = (v_rest − v) + ge·(E_exc − v) + gi·(E_inh − v)``.

    ``dge/dt = −ge/τ_ge``, ``dgi/dt = −gi/τ_gi``. ``method``: ``"euler"`` (Brian's
    forward Euler: every variable from the old values at once; the thesis) or
    ``"exponential_euler"`` (each variable exactly, others frozen; Diehl & Cook
    2015 as in the bench scripts). ``threshold_form``:

    * ``"none"``: spike when ``v > v_th``;
    * ``"vt-copy"``: ``dvt/dt = (v_th − vt)/τ_vt``, ``vt += vt_plus`` on a spike,
      spike when ``v > v2`` with ``v2 := vt`` copied by :meth:`onset` (thesis);
    * ``"vt"``: the same ``vt``, tested continuously: ``v > vt``;
    * ``"theta"``: ``dθ/dt = −θ/τ_θ``, ``θ += theta_plus`` on a spike, spike when
      ``v > v_th + θ`` (Diehl & Cook 2015, θ measured from 0).

    ``hold_when_refractory``: Brian's ``(unless refractory)`` flag on ``v``
    (Diehl & Cook: v is held; thesis: v keeps integrating, only spiking is blocked).
    """

    dt_ms: float = 0.1
    tau_m_ms: float = 100.0
    v_rest_mv: float = -60.0
    v_reset_mv: float = -65.0
    v_th_mv: float = -52.0
    e_exc_mv: float = 0.0
    e_inh_mv: float = -100.0
    tau_ge_ms: float = 5.0
    tau_gi_ms: float = 10.0
    refractory_ms: float = 5.0
    method: str = "euler"
    threshold_form: str = "none"
    tau_vt_ms: float = 150.0
    vt_plus_mv: float = 3.0
    theta_plus_mv: float = 0.05
    tau_theta_ms: float = 1e7
    hold_when_refractory: bool = False
    v_init_mv: float = -80.0

    def __post_init__(self):
        for name in ("dt_ms", "tau_m_ms", "tau_ge_ms", "tau_gi_ms", "tau_vt_ms", "tau_theta_ms"):
            _positive(name, getattr(self, name))
        if self.refractory_ms < 0:
            raise ConfigError(f"refractory_ms must be ≥ 0 ms, got {self.refractory_ms!r}")
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.threshold_form not in THRESHOLD_FORMS:
            raise ConfigError(f"threshold_form must be one of {THRESHOLD_FORMS}, got {self.threshold_form!r}")

    @property
    def ref_steps(self) -> int:
        return timestep(self.refractory_ms, self.dt_ms)

    def init(self, n: int, dtype=None) -> CondLIFState:
        dt = _float_dtype(dtype)
        z = jnp.zeros((n,), dt)
        return CondLIFState(
            v=jnp.full((n,), self.v_init_mv, dt),
            ge=z,
            gi=z,
            vt=jnp.full((n,), self.v_th_mv, dt),
            theta=z,
            v2=jnp.full((n,), self.v_th_mv, dt),
            since=jnp.full((n,), NEVER, jnp.int32),
        )

    def onset(self, s: CondLIFState) -> CondLIFState:
        """Image onset: copy ``v2 := vt`` (thesis ``EG.v2 = 'vt'``)."""
        return s._replace(v2=s.vt)

    def integrate(self, s: CondLIFState):
        """Advance one step from the old values; returns ``(state, not_refractory)``."""
        since = _advance_since(s.since)
        not_ref = since >= self.ref_steps
        dtype = s.v.dtype
        c = lambda x: jnp.asarray(x, dtype)  # noqa: E731
        dt = self.dt_ms
        v, ge, gi, vt, theta = s.v, s.ge, s.gi, s.vt, s.theta
        if self.method == "euler":
            v_new = v + c(dt) * (ge * (c(self.e_exc_mv) - v) + gi * (c(self.e_inh_mv) - v) + (c(self.v_rest_mv) - v)) / c(self.tau_m_ms)
            ge_new = ge - c(dt) * ge / c(self.tau_ge_ms)
            gi_new = gi - c(dt) * gi / c(self.tau_gi_ms)
            vt_new = vt + c(dt) * (c(self.v_th_mv) - vt) / c(self.tau_vt_ms)
            theta_new = theta - c(dt) * theta / c(self.tau_theta_ms)
        else:
            a = 1 + ge + gi
            v_inf = (c(self.v_rest_mv) + ge * c(self.e_exc_mv) + gi * c(self.e_inh_mv)) / a
            v_new = v_inf + (v - v_inf) * jnp.exp(-c(dt) * a / c(self.tau_m_ms))
            ge_new = ge * c(math.exp(-dt / self.tau_ge_ms))
            gi_new = gi * c(math.exp(-dt / self.tau_gi_ms))
            vt_new = c(self.v_th_mv) + (vt - c(self.v_th_mv)) * c(math.exp(-dt / self.tau_vt_ms))
            theta_new = theta * c(math.exp(-dt / self.tau_theta_ms))
        if self.hold_when_refractory:
            v_new = jnp.where(not_ref, v_new, v)
        if self.threshold_form in ("vt-copy", "vt"):
            vt = vt_new
        if self.threshold_form == "theta":
            theta = theta_new
        return CondLIFState(v_new, ge_new, gi_new, vt, theta, s.v2, since), not_ref

    def threshold(self, s: CondLIFState, not_ref):
        form = self.threshold_form
        if form == "none":
            thr = jnp.asarray(self.v_th_mv, s.v.dtype)
        elif form == "vt-copy":
            thr = s.v2
        elif form == "vt":
            thr = s.vt
        else:
            thr = jnp.asarray(self.v_th_mv, s.v.dtype) + s.theta
        return (s.v > thr) & not_ref

    def add_input(self, s: CondLIFState, dge=0.0, dgi=0.0):
        return s._replace(ge=s.ge + dge, gi=s.gi + dgi)

    def reset(self, s: CondLIFState, spikes):
        dtype = s.v.dtype
        v = jnp.where(spikes, jnp.asarray(self.v_reset_mv, dtype), s.v)
        vt, theta = s.vt, s.theta
        if self.threshold_form in ("vt-copy", "vt"):
            vt = jnp.where(spikes, vt + jnp.asarray(self.vt_plus_mv, dtype), vt)
        if self.threshold_form == "theta":
            theta = jnp.where(spikes, theta + jnp.asarray(self.theta_plus_mv, dtype), theta)
        return CondLIFState(v, s.ge, s.gi, vt, theta, s.v2, jnp.where(spikes, 0, s.since))

    def step(self, s: CondLIFState, dge=0.0, dgi=0.0):
        """One step in Brian's order: integrate → threshold → inputs → reset."""
        s, not_ref = self.integrate(s)
        spikes = self.threshold(s, not_ref)
        s = self.add_input(s, dge, dgi)
        return self.reset(s, spikes), spikes


#: Thesis excitatory neuron (Euler, adaptive threshold copied at image onset).
THESIS_EXC = dict(
    tau_m_ms=100.0, v_rest_mv=-60.0, v_reset_mv=-65.0, v_th_mv=-52.0, e_exc_mv=0.0, e_inh_mv=-100.0,
    tau_ge_ms=5.0, tau_gi_ms=10.0, refractory_ms=5.0, method="euler", threshold_form="vt-copy",
    tau_vt_ms=150.0, vt_plus_mv=3.0, hold_when_refractory=False, v_init_mv=-80.0,
)
#: Thesis inhibitory neuron (no inhibitory conductance input).
THESIS_INH = dict(
    tau_m_ms=10.0, v_rest_mv=-60.0, v_reset_mv=-45.0, v_th_mv=-40.0, e_exc_mv=0.0, e_inh_mv=-85.0,
    tau_ge_ms=5.0, tau_gi_ms=10.0, refractory_ms=2.0, method="euler", threshold_form="none",
    hold_when_refractory=False, v_init_mv=-80.0,
)
#: Diehl & Cook 2015 excitatory neuron (exponential Euler, θ threshold, v held while refractory).
DC15_EXC = dict(
    tau_m_ms=100.0, v_rest_mv=-65.0, v_reset_mv=-65.0, v_th_mv=-52.0, e_exc_mv=0.0, e_inh_mv=-100.0,
    tau_ge_ms=1.0, tau_gi_ms=2.0, refractory_ms=5.0, method="exponential_euler", threshold_form="theta",
    theta_plus_mv=0.05, tau_theta_ms=1e7, hold_when_refractory=True, v_init_mv=-105.0,
)
#: Diehl & Cook 2015 inhibitory neuron.
DC15_INH = dict(
    tau_m_ms=10.0, v_rest_mv=-60.0, v_reset_mv=-45.0, v_th_mv=-40.0, e_exc_mv=0.0, e_inh_mv=-85.0,
    tau_ge_ms=1.0, tau_gi_ms=2.0, refractory_ms=2.0, method="exponential_euler", threshold_form="none",
    hold_when_refractory=True, v_init_mv=-100.0,
)


def lif(*, dt_ms: float = 0.1, tau_m_ms: float = 20.0, tau_syn_ms: float = 5.0, v_rest_mv: float = -65.0,
        v_reset_mv: float = -65.0, v_th_mv: float = -52.0, v_init_mv: float = -65.0, refractory_ms: float = 2.0,
        hold_when_refractory: bool = True) -> LIF:
    """Current-based leaky integrate-and-fire neuron (exact exponential integration); times in ms, potentials in mV."""
    return LIF(**{k: v for k, v in locals().items()})


def _conductance(defaults: dict, given: dict) -> ConductanceLIF:
    """A :class:`ConductanceLIF` from a preset (``THESIS_EXC`` …) and the parameters given over it."""
    return ConductanceLIF(**{**defaults, **given})


def conductance_lif(*, dt_ms: float = 0.1, tau_m_ms: float = 100.0, v_rest_mv: float = -60.0,
                    v_reset_mv: float = -65.0, v_th_mv: float = -52.0, e_exc_mv: float = 0.0,
                    e_inh_mv: float = -100.0, tau_ge_ms: float = 5.0, tau_gi_ms: float = 10.0,
                    refractory_ms: float = 5.0, method: str = "euler", threshold_form: str = "vt-copy",
                    tau_vt_ms: float = 150.0, vt_plus_mv: float = 3.0, theta_plus_mv: float = 0.05,
                    tau_theta_ms: float = 1e7, hold_when_refractory: bool = False,
                    v_init_mv: float = -80.0) -> ConductanceLIF:
    """Conductance-based excitatory LIF with optional adaptive threshold (thesis defaults, ``THESIS_EXC``)."""
    return _conductance(THESIS_EXC, dict(locals()))


def inhibitory_lif(*, dt_ms: float = 0.1, tau_m_ms: float = 10.0, v_rest_mv: float = -60.0,
                   v_reset_mv: float = -45.0, v_th_mv: float = -40.0, e_exc_mv: float = 0.0,
                   e_inh_mv: float = -85.0, tau_ge_ms: float = 5.0, tau_gi_ms: float = 10.0,
                   refractory_ms: float = 2.0, method: str = "euler", threshold_form: str = "none",
                   hold_when_refractory: bool = False, v_init_mv: float = -80.0) -> ConductanceLIF:
    """Conductance-based inhibitory LIF (thesis defaults, ``THESIS_INH``: τ 10 ms, threshold −40 mV)."""
    return _conductance(THESIS_INH, dict(locals()))


def dc15_inhibitory_lif(*, dt_ms: float = 0.5, tau_m_ms: float = 10.0, v_rest_mv: float = -60.0,
                         v_reset_mv: float = -45.0, v_th_mv: float = -40.0, e_exc_mv: float = 0.0,
                         e_inh_mv: float = -85.0, tau_ge_ms: float = 1.0, tau_gi_ms: float = 2.0,
                         refractory_ms: float = 2.0, method: str = "exponential_euler", threshold_form: str = "none",
                         hold_when_refractory: bool = True, v_init_mv: float = -100.0) -> ConductanceLIF:
    """Diehl & Cook 2015's inhibitory conductance LIF (``DC15_INH``: τ 10 ms, threshold −40 mV, exponential
    Euler, v held while refractory)."""
    return _conductance(DC15_INH, dict(locals()))


def dc15_lif(*, dt_ms: float = 0.5, tau_m_ms: float = 100.0, v_rest_mv: float = -65.0,
             v_reset_mv: float = -65.0, v_th_mv: float = -52.0, e_exc_mv: float = 0.0,
             e_inh_mv: float = -100.0, tau_ge_ms: float = 1.0, tau_gi_ms: float = 2.0,
             refractory_ms: float = 5.0, method: str = "exponential_euler", threshold_form: str = "theta",
             tau_vt_ms: float = 150.0, vt_plus_mv: float = 3.0, theta_plus_mv: float = 0.05,
             tau_theta_ms: float = 1e7, hold_when_refractory: bool = True,
             v_init_mv: float = -105.0) -> ConductanceLIF:
    """Diehl & Cook 2015's excitatory conductance LIF (``DC15_EXC``: exponential Euler, θ threshold, v held
    while refractory)."""
    return _conductance(DC15_EXC, dict(locals()))


@hookimpl
def snnjax_neuron_models():
    return {"lif": lif, "conductance-lif": conductance_lif, "inhibitory-lif": inhibitory_lif, "dc15-lif": dc15_lif,
            "dc15-inhibitory-lif": dc15_inhibitory_lif}
