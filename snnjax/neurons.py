r"""The neuron-model protocol: what a ``snnjax_neuron_models`` factory returns.

A neuron model is a (hashable, static) object with pure functions on an explicit
state pytree for a population of ``n`` neurons; potentials in mV, times in ms::

    model = registry.create("neuron", "lif", dt_ms=0.1)
    state = model.init(n)                     # state pytree, arrays of shape [n]
    state, spikes = model.step(state, drive)  # one step of dt_ms; spikes: bool[n]

Models that a network runs in Brian 2's schedule (state update of every
population, then thresholds, then synapses, then resets) also implement
:class:`ScheduledNeuronModel`: ``step`` split into ``integrate`` →
``threshold`` → (synaptic input) → ``reset``. The built-ins
(``snnjax_plugins.neurons``: ``LIF``, ``ConductanceLIF``) implement both.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from jaxtyping import Array, Bool

State = Any


@runtime_checkable
class NeuronModel(Protocol):
    """``init(n, dtype=None) -> state`` and ``step(state, *inputs) -> (state, spikes bool[n])``, pure functions."""

    dt_ms: float

    def init(self, n: int, dtype=None) -> State:
        """The resting state of ``n`` neurons (arrays of shape ``[n]``, float ``dtype``)."""
        ...

    def step(self, state: State, *inputs: Any) -> tuple[State, Bool[Array, " n"]]:
        """One time step of ``dt_ms`` given this step's synaptic input; returns the new state and the spikes."""
        ...


@runtime_checkable
class ScheduledNeuronModel(NeuronModel, Protocol):
    """A :class:`NeuronModel` whose step is split into Brian 2's slots (so a network can interleave populations)."""

    def integrate(self, state: State) -> tuple[State, Bool[Array, " n"]]:
        """State update over one step; returns the state and the not-refractory mask."""
        ...

    def threshold(self, state: State, not_refractory: Bool[Array, " n"]) -> Bool[Array, " n"]:
        """The spikes of this step."""
        ...

    def reset(self, state: State, spikes: Bool[Array, " n"]) -> State:
        """The state after the spiking neurons' reset."""
        ...


__all__ = ["NeuronModel", "ScheduledNeuronModel"]
