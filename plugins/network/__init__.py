r"""The Diehl & Cook family network: Poisson inputs → S1 (plastic) → exc LIF → S2 → inh LIF → S3 → exc.

* S1: input → excitatory, all-to-all, plastic by any :class:`~snnjax.plasticity.LearningRule`,
  no delay, ``ge += w``;
* S2: excitatory ``j`` → inhibitory ``j`` (one-to-one), ``ge += w_ei``, delays;
* S3: inhibitory ``i`` → excitatory ``j ≠ i`` (all-but-self), ``gi += w_ie``, delays.

One step follows Brian 2's schedule (see the Brian 2 fixtures' README):
state update of both populations → thresholds → synapses (all ``on_pre``
pathways — S1 transmission, S2, S3 — then the rule, whose own order is on_pre
before on_post) → resets. Delays are whole steps, ``int(d/dt + 0.5)``; a spike
of step ``n`` with delay ``k`` arrives in the synapse slot of step ``n + k``
(``k = 0``: the same step), through ring buffers.

Everything is event-driven and the step contains no loop: the spiking inputs of
a step are a padded index list of length ``k_in``, drawn for the whole
presentation before the time loop (:func:`~snnjax_plugins.encoders.sample_table`);
S1 transmission and the rule's on_pre updates touch only their rows; only the first
``k_in_chunk`` list entries are processed every step, the rest (and S3's list) inside a
``lax.cond`` taken only when it holds a spike, with :func:`batch_any` as predicate so that the
branch is skipped under ``vmap`` too when no seed needs it. Events
beyond a list's length are **not** processed but counted
(``PresentationOutput.dropped_events``; :func:`check_dropped` raises): a run is
exact when the count is 0, and the defaults make overflow astronomically
unlikely at the configured rates (``docs/performance.md``).

Two plasticity paths (``NetworkConfig.plasticity``):

* deferred (``"auto"`` picks it for every rule that declares a fast form in its
  ``fast`` field, a :class:`~snnjax.deferred.DeferredTrace`: the built-in
  hard-bounded trace rules ``stdp``, ``all_ltd``, merged ``segment_supervised``,
  ``stdp_dc15``, each also chained with a lazy ``use_it_or_lose_it``, and any
  plugin's rule that declares one): on_post updates are summed per neuron
  and applied to a weight row only when its input spikes (before transmission
  reads it; the lazy decay is applied there too) and at the end of short blocks
  (``lazy_block_ms``); identical to the per-step rule up to float rounding
  (see :mod:`snnjax.deferred`);
* general (``"reference"``, or any other rule): the rule's ``prepare`` and
  ``update`` every step, with the rule's on_post touching the columns of the
  spiking excitatory neurons (padded list of length ``k_post``).

Modules, by concern: :mod:`.config` (:class:`NetworkConfig`, presets),
:mod:`.state` (:class:`NetworkState`, :class:`PresentationOutput`, initial state),
:mod:`.step` (one time step; the general and the inference paths),
:mod:`.deferred` (the fast path), :mod:`.present` (presentations).

Public pure functions: :func:`init_network`, :func:`present` (one image, Poisson
input drawn inside), :func:`present_raster` (given input raster; used by the
fixtures), :func:`present_many` (a scan over images), :func:`present_each` (every
image from the same state: the parallel test), :func:`segment_gates` (the label
gates of a sequence of images). Presets:
:func:`thesis_config`, :func:`dc15_config`. Times in ms, voltages in mV.
"""

from __future__ import annotations

from ..encoders import FAR
from .config import (RECORDABLE, NetworkConfig, check_exc_model, check_inh_model, check_rate_encoder, dc15_config,
                     delay_steps, delay_steps_static, part_keys, thesis_config)
from .present import present, present_each, present_many, present_raster, segment_gates
from .state import NetworkState, PresentationOutput, check_dropped, init_network, with_delays
from .step import batch_any

__all__ = [
    "FAR",
    "RECORDABLE",
    "batch_any",
    "delay_steps_static",
    "NetworkConfig",
    "NetworkState",
    "check_dropped",
    "check_exc_model",
    "check_inh_model",
    "check_rate_encoder",
    "PresentationOutput",
    "dc15_config",
    "delay_steps",
    "init_network",
    "part_keys",
    "present",
    "present_each",
    "present_many",
    "present_raster",
    "segment_gates",
    "thesis_config",
    "with_delays",
]

