"""Array type aliases used in signatures (jaxtyping), with their units.

Units are part of the names' documentation: times are in ms, voltages in mV,
rates in Hz; conductances and weights are dimensionless (in units of the leak
conductance).
"""

from __future__ import annotations

from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

Key = PRNGKeyArray
#: Boolean spike vector or raster (``True`` = spike in that time step).
Spikes = Bool[Array, "..."]
#: Membrane potential in mV.
Voltage = Float[Array, "..."]
#: Synaptic weights, ``W[pre, post]``.
Weights = Float[Array, "pre post"]
#: Synaptic trace (dimensionless).
Trace = Float[Array, "..."]
#: Firing rate in Hz.
Rate = Float[Array, "..."]
#: Integer spike counts.
Counts = Int[Array, "..."]

__all__ = ["Array", "Bool", "Float", "Int", "Key", "Spikes", "Voltage", "Weights", "Trace", "Rate", "Counts"]
