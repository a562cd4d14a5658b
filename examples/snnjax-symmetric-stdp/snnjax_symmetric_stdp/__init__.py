r"""An example third-party snnjax plugin: a rule with a declared fast form, a regularizer, an inhibition scheme.

* rule ``symmetric-stdp`` (:mod:`.rule`): potentiation for both spike orders,
  ``+A·exp(−|Δt|/τ)``; declares its deferred form, so the network runs it on the
  fast path;
* regularizer ``synaptic-scaling`` (:mod:`.regularizer`): column sums drift to a target;
* inhibition ``global-wta`` (:mod:`.inhibition`): one winner per time step.

Install with ``pip install -e .`` and use them by name, e.g.
``snnjax run supervised-stdp --set rule=symmetric-stdp``.
"""

from __future__ import annotations

from snnjax import hookimpl

from .inhibition import global_wta
from .regularizer import synaptic_scaling
from .rule import SymmetricForm, SymmetricState, symmetric_stdp


@hookimpl
def snnjax_learning_rules():
    return {"symmetric-stdp": symmetric_stdp}


@hookimpl
def snnjax_regularizers():
    return {"synaptic-scaling": synaptic_scaling}


@hookimpl
def snnjax_inhibitions():
    return {"global-wta": global_wta}


__all__ = ["SymmetricForm", "SymmetricState", "global_wta", "symmetric_stdp", "synaptic_scaling"]
