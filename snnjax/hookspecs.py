"""The hooks a snnjax plugin implements.

A plugin is a Python module (or object) listed under the ``snnjax`` entry-point
group of its distribution::

    [project.entry-points.snnjax]
    my_rules = "my_package.rules"

and implementing one or more of the hooks below with :data:`snnjax.hookimpl`.
Every hook takes no argument and returns a ``dict`` mapping a **plugin name**
(lower-case, dash-separated, e.g. ``"stdp"``) to a **factory**: a callable that
takes keyword parameters (from the run's config) and returns pure JAX functions
or pytrees. Hooks are called once, when the registry is built; nothing a hook
returns is called from inside a ``lax.scan`` step except the pure functions the
factories build. The first line of a factory's docstring is its one-line
description in ``snnjax plugins``.

Built-in plugins (in the ``snnjax_plugins`` package) are registered through the
same entry-point group as third-party ones: the engine names no model or rule.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "snnjax"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorator that marks a function in a plugin module as a hook implementation.
hookimpl = pluggy.HookimplMarker(PROJECT)

Factory = Callable[..., object]


@hookspec
def snnjax_neuron_models() -> dict[str, Factory]:
    """Neuron models.

    Each factory returns a :class:`snnjax.neurons.NeuronModel` (``init`` and
    ``step`` pure functions on an explicit state pytree); models a network runs in
    Brian 2's schedule also implement :class:`snnjax.neurons.ScheduledNeuronModel`.
    """


@hookspec
def snnjax_encoders() -> dict[str, Factory]:
    """Input encoders (images → spikes).

    Each factory returns a :class:`snnjax.encoding.Encoder`: an object with
    ``encode(key, image, ...)`` that maps an image to a spike raster or spike wave.
    """


@hookspec
def snnjax_learning_rules() -> dict[str, Factory]:
    """Learning rules.

    Each factory returns a :class:`snnjax.plasticity.LearningRule`: an
    ``(init, update)`` pair of pure functions, like an optax transformation; a
    trace rule may declare its fast form in ``fast`` (:class:`snnjax.deferred.DeferredTrace`).
    """


@hookspec
def snnjax_inhibitions() -> dict[str, Factory]:
    """Inhibition schemes (k-WTA, pointwise, lateral radius, ...).

    Each factory returns a :class:`snnjax.inhibition.Inhibition`: a pure function
    on potentials (and spikes).
    """


@hookspec
def snnjax_regularizers() -> dict[str, Factory]:
    """Regularizers and constraints on weights (freezing masks, ranges, decays).

    Each factory returns a :class:`snnjax.plasticity.LearningRule` transform that
    composes with a rule through :func:`snnjax.plasticity.chain`; a decay applied
    to a row at its input's spike may declare :class:`snnjax.deferred.DeferredRowDecay`.
    """


@hookspec
def snnjax_datasets() -> dict[str, Factory]:
    """Datasets.

    Each factory returns a :class:`snnjax.data.DatasetSource`.
    """


@hookspec
def snnjax_experiments() -> dict[str, Factory]:
    """Experiments, run with ``snnjax run NAME``.

    Each factory takes no argument and returns a :class:`snnjax.experiment.Experiment`.
    """


#: Plugin kind (as shown by ``snnjax plugins``) → the hook that provides it.
KINDS: dict[str, str] = {
    "neuron": "snnjax_neuron_models",
    "encoder": "snnjax_encoders",
    "rule": "snnjax_learning_rules",
    "inhibition": "snnjax_inhibitions",
    "regularizer": "snnjax_regularizers",
    "dataset": "snnjax_datasets",
    "experiment": "snnjax_experiments",
}
