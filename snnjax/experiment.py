"""The contract of an experiment plugin.

An experiment is registered under the ``snnjax_experiments`` hook as a factory
returning an :class:`Experiment`. ``snnjax run NAME`` resolves its config
(defaults ← ``--config FILE.toml`` ← ``--set key=value``), validates it
(unknown keys get a "did you mean"), then calls ``experiment.run(ctx)`` with a
:class:`RunContext`. ``run`` returns a :class:`RunResult`; the CLI writes
``results.json`` / ``config.json`` and prints the summary.

Every experiment is a pure function of ``(key, config, data)`` per seed: the
seeds are :meth:`RunContext.seed_keys` (seed *i* is ``fold_in(PRNGKey(config["seed"]), i)``,
per-seed NumPy randomness is drawn from ``default_rng([config["seed"], i])`` over
:attr:`RunContext.seed_ids`). The experiment declares per-seed programs and the phases
of its run; :attr:`RunContext.loop` (:class:`snnjax.loop.RunLoop`) batches them over
the seeds (``vmap``, sharded over devices, compiled once per shape) and runs the phases
with checkpoints, resume and progress.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Experiment:
    """An experiment: its name, one-line description, config defaults and body.

    Attributes:
        name: plugin name (``snnjax run NAME``).
        description: one line for ``snnjax plugins``.
        defaults: flat mapping ``key -> default value``; its keys are the only
            keys ``--set`` accepts. Values are ``bool``, ``int``, ``float``,
            ``str`` or lists of those.
        run: the body, ``run(ctx: RunContext) -> RunResult``.
        validate: optional ``validate(config) -> None`` raising
            :class:`snnjax.errors.ConfigError` (called before any data is
            loaded or anything is compiled).
        thesis: optional ``{metric name: thesis figure (str)}`` shown beside
            our numbers in summaries and reports.
    """

    name: str
    description: str
    defaults: Mapping[str, Any]
    run: Callable[["RunContext"], "RunResult"]
    validate: Callable[[Mapping[str, Any]], None] | None = None
    thesis: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RunContext:
    """What the runner hands an experiment's body."""

    config: Mapping[str, Any]
    n_seeds: int
    out_dir: Path
    registry: Any
    progress: Callable[[int, int, str], None] = lambda done, total, what="": None
    checkpoint: Any = None  #: a :class:`snnjax.checkpoint.Checkpointer` or ``None``
    #: the results finished so far; an experiment updates it after each chunk of
    #: work so that Ctrl-C keeps what was computed.
    partial: "RunResult | None" = None

    #: index of the first seed (``snnjax run --first-seed``): this run computes seeds
    #: ``first_seed, …, first_seed + n_seeds − 1`` of the family ``config["seed"]``.
    first_seed: int = 0
    _loop: Any = field(default=None, repr=False)

    @property
    def loop(self) -> Any:
        """The run's :class:`snnjax.loop.RunLoop` (made on first use): batched programs, phases, streams."""
        if self._loop is None:
            from .loop import RunLoop

            self._loop = RunLoop(self)
        return self._loop

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def seed_ids(self) -> range:
        """The indices of this run's seeds within the family ``config["seed"]``."""
        return range(self.first_seed, self.first_seed + self.n_seeds)

    def seed_keys(self) -> Any:
        """``[n_seeds]`` PRNG keys of this run's seeds (:func:`snnjax.seeds.seed_keys`)."""
        from .seeds import seed_keys

        return seed_keys(self.seed, self.n_seeds, self.first_seed)


@dataclass
class RunResult:
    """What an experiment returns.

    Attributes:
        metrics: ``{name: per-seed array}``; a 1-D array ``[n_seeds]`` is a
            scalar metric, ``[n_seeds, n_points]`` a curve (the CLI stores its
            mean/std per point).
        curves_x: for curve metrics, ``{name: x values}`` (e.g. images seen).
        extra: anything JSON-serialisable to store in ``results.json``.
        figures: paths of the figures the run wrote.
    """

    metrics: dict[str, np.ndarray]
    curves_x: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
