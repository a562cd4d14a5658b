r"""The fast (deferred) form a learning rule may declare: capability by type, as diffrax's ``AbstractAdaptiveSolver``.

A network runs a rule every time step through its ``prepare``/``update`` pair
(the *general path*). A rule of the **hard-bounded pair-trace family** may in
addition declare, in its :attr:`~snnjax.plasticity.LearningRule.fast` field, an
instance of :class:`DeferredTrace`: the per-neuron pieces from which an engine
computes the same weights with *deferred* on_post updates (the *fast path*;
``snnjax_plugins.network.deferred``).

Why it is exact (up to float rounding). Let the rule's on_post change of
``W[i, j]`` at a spike of ``j`` be ``lr_post_j · a_i(t)``, where ``a_i`` is the
presynaptic trace of input ``i``: it only decays between two spikes of ``i``
(``a_i(t) = a_i(t_i)·e^{−(t − t_i)/τ_pre}``). Between two spikes of ``i`` all
on_post increments of row ``i`` then have the sign of ``lr_post_j`` and the
sequential clipped additions equal one clipped addition of their sum

.. math::

    \sum_{p} \mathrm{lr\_post}_j\, x_j(t_p)\, a_i(t_i)\, e^{-(t_p - t_i)/\tau_{pre}},

which factorises into a per-row coefficient times a per-neuron accumulator.
A row is brought up to date just before input ``i`` spikes (when the rule's
on_pre reads it) and at the end of short blocks. What the engine needs from a
rule is the list of methods below; units: times in ms, traces dimensionless,
rates in the weights' unit.

A regularizer applied to a weight row only when its input spikes, *before* the
spike is transmitted (the lazy "use it or lose it" decay), declares
:class:`DeferredRowDecay`; :func:`snnjax.plasticity.chain` of a
:class:`DeferredTrace` rule followed by such a decay declares
:class:`TraceThenRowDecay` on its own. Any other composition has no fast form
and runs the general path.

A third-party trace rule opts in by subclassing :class:`DeferredTrace` and
passing an instance as ``LearningRule(init, update, fast=...)``; the engine
tests the type, never the function's identity. Declaring a form promises that
the rule's ``prepare`` is the identity and that its ``update`` equals the
deferred computation up to rounding (test it as ``tests/test_fast_path.py``
does).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

from jaxtyping import Array, Bool, Float

State = Any
PostTraces = tuple  # tuple of ``float[n_post]`` postsynaptic traces


class DeferredTrace(abc.ABC):
    """Declared fast form of a hard-bounded trace rule (see the module docs).

    Attributes every subclass provides (e.g. as frozen-dataclass fields):
        tau_pre_ms: decay time of the presynaptic trace, ms.
        w_min, w_max: the hard weight bounds (every change is clipped to them).
    """

    tau_pre_ms: float
    w_min: float
    w_max: float

    #: the row decay a :class:`TraceThenRowDecay` adds; ``None`` for a rule alone
    row_decay: DeferredRowDecay | None = None

    @abc.abstractmethod
    def split(self, state: State) -> tuple[Float[Array, " n_pre"], PostTraces]:
        """Rule state → (presynaptic trace ``[n_pre]``, tuple of postsynaptic traces ``[n_post]``)."""

    @abc.abstractmethod
    def join(self, apre: Float[Array, " n_pre"], post: PostTraces, decay_state: State = None) -> State:
        """Inverse of :meth:`split` (``decay_state`` is only used by :class:`TraceThenRowDecay`)."""

    def decay_state(self, state: State) -> State:
        """The state of the chained row decay, or ``None``."""
        del state
        return None

    @abc.abstractmethod
    def rates(self, gain, gate: Float[Array, " n_post"] | None, n_post: int, dtype) -> tuple[Array, Array]:
        """Per-neuron factors ``(lr_pre[n_post], lr_post[n_post])`` of one presentation (gain, gate constant in it)."""

    @abc.abstractmethod
    def decay_post(self, post: PostTraces, dt_ms: float) -> PostTraces:
        """Postsynaptic traces decayed over one step of ``dt_ms``."""

    @abc.abstractmethod
    def pre_value(self, a_now: Float[Array, " k"]) -> Float[Array, " k"]:
        """Presynaptic trace just after a spike, given its decayed value."""

    @abc.abstractmethod
    def pre_row_delta(self, post: PostTraces, lr_pre: Float[Array, " n_post"]) -> Float[Array, " n_post"]:
        """The on_pre change added to a spiking input's row before clipping, ``[n_post]``."""

    @abc.abstractmethod
    def post_weight(self, post: PostTraces, spikes: Bool[Array, " n_post"]) -> Float[Array, " n_post"]:
        """``x_j``: this step's factor of neuron ``j``'s spike in the deferred sum (0 where it is silent)."""

    @abc.abstractmethod
    def post_spike(self, post: PostTraces, spikes: Bool[Array, " n_post"]) -> PostTraces:
        """Postsynaptic traces after this step's spikes."""


class DeferredRowDecay(abc.ABC):
    r"""Declared fast form of a multiplicative row decay applied just before an input's spike is transmitted.

    At a spike of input ``i`` at time ``t`` (ms) row ``i`` is multiplied by
    :meth:`row_factor` ``(t, t_s[i], k)``, then ``t_s[i] ← t``; ``t_s`` (ms, per
    input) and the scalar strength ``k`` live in the regularizer's state.
    """

    @abc.abstractmethod
    def times(self, state: State) -> Float[Array, " n_pre"]:
        """``t_s``: time of each input's last spike, ms."""

    @abc.abstractmethod
    def strength(self, state: State) -> Float[Array, ""]:
        """The decay strength held in the state (e.g. ``k_p``)."""

    @abc.abstractmethod
    def with_times(self, state: State, t_s: Float[Array, " n_pre"]) -> State:
        """``state`` with ``t_s`` replaced."""

    @abc.abstractmethod
    def row_factor(self, t_ms, t_s: Float[Array, " k"], strength, dtype) -> Float[Array, " k"]:
        """The factor a row gets at a spike at ``t_ms`` when its input last spiked at ``t_s``."""


@dataclasses.dataclass(frozen=True)
class TraceThenRowDecay(DeferredTrace):
    """Fast form of ``chain(rule, decay)``: a :class:`DeferredTrace` rule followed by a :class:`DeferredRowDecay`.

    The chain's state is ``(rule state, decay state)``; every trace method is the rule's.
    """

    base: DeferredTrace
    decay: DeferredRowDecay

    @property
    def tau_pre_ms(self) -> float:
        return self.base.tau_pre_ms

    @property
    def w_min(self) -> float:
        return self.base.w_min

    @property
    def w_max(self) -> float:
        return self.base.w_max

    @property
    def row_decay(self) -> DeferredRowDecay:
        return self.decay

    def split(self, state):
        return self.base.split(state[0])

    def join(self, apre, post, decay_state=None):
        return (self.base.join(apre, post), decay_state)

    def decay_state(self, state):
        return state[1]

    def rates(self, gain, gate, n_post, dtype):
        return self.base.rates(gain, gate, n_post, dtype)

    def decay_post(self, post, dt_ms):
        return self.base.decay_post(post, dt_ms)

    def pre_value(self, a_now):
        return self.base.pre_value(a_now)

    def pre_row_delta(self, post, lr_pre):
        return self.base.pre_row_delta(post, lr_pre)

    def post_weight(self, post, spikes):
        return self.base.post_weight(post, spikes)

    def post_spike(self, post, spikes):
        return self.base.post_spike(post, spikes)


def compose_fast(forms: tuple) -> DeferredTrace | None:
    """The fast form of a chain whose parts declare ``forms`` (``None`` entries: no form), or ``None``.

    Only ``(DeferredTrace without decay, DeferredRowDecay)`` composes.
    """
    if len(forms) == 2:
        rule, decay = forms
        if isinstance(rule, DeferredTrace) and rule.row_decay is None and isinstance(decay, DeferredRowDecay):
            return TraceThenRowDecay(rule, decay)
    return None


def fast_form(rule) -> DeferredTrace | None:
    """The :class:`DeferredTrace` a rule declares in its ``fast`` field, or ``None`` (general path only)."""
    form = getattr(rule, "fast", None)
    return form if isinstance(form, DeferredTrace) else None


__all__ = ["DeferredRowDecay", "DeferredTrace", "TraceThenRowDecay", "compose_fast", "fast_form"]
