"""Convolutional STDP networks with SpykeTorch semantics (Mozafari 2019, Kheradpisheh 2018).

Modules: :mod:`.frontend` (DoG + latency coding), :mod:`.layers` (conv / fire / pool / pad on
spike waves), :mod:`.inhibition` (pointwise, k-WTA), :mod:`.stdp` (STDP, R-STDP),
:mod:`.networks` (layer-wise training on cached spike waves), :mod:`.events` (a training step from
first crossings: ``conv_impl = "events"``). Registered plugins: encoder
``dog-latency``; inhibitions ``pointwise`` and ``k-wta``; rules ``spyketorch-stdp`` and
``r-stdp``. The experiment ``conv-mnist`` is registered with the others
(:mod:`snnjax_plugins.experiments`).
"""

from __future__ import annotations

from snnjax.hookspecs import hookimpl

from .frontend import dog_latency
from .inhibition import k_wta, pointwise
from .stdp import r_stdp, spyketorch_stdp


@hookimpl
def snnjax_encoders():
    return {"dog-latency": dog_latency}


@hookimpl
def snnjax_inhibitions():
    return {"pointwise": pointwise, "k-wta": k_wta}


@hookimpl
def snnjax_learning_rules():
    return {"spyketorch-stdp": spyketorch_stdp, "r-stdp": r_stdp}

