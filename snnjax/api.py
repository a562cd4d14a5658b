"""``snnjax.run``: run an experiment from Python, exactly as ``snnjax run`` does.

One implementation serves both: the command line parses its arguments and calls
:func:`run`. The same checks come first (experiment name, config keys and types,
the experiment's own ``validate``, the seed range, the output directory), each a
:class:`~snnjax.errors.SnnjaxError` raised before anything is compiled; then the
run directory is locked, the run is made with the CLI's atomic writes, signal
handling and checkpoints, and ``results.json`` is written.

>>> import snnjax
>>> done = snnjax.run("supervised-stdp", {"n_rounds": 1, "images_per_round": 5, "n_test": 5},
...                   seeds=2, out="runs/api-demo")                          # doctest: +SKIP
>>> done.metrics["accuracy"].shape                                          # doctest: +SKIP
(2, 1)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["RunResult", "RunStopped", "config_layers", "run"]


@dataclass(frozen=True)
class RunResult:
    """What :func:`run` returns.

    ``results`` is the ``results.json`` document (written to ``out_dir/results.json``
    unless ``out_dir`` is ``None``); ``metrics`` maps each metric name to its per-seed
    values as NumPy arrays, leading axis = seed (``results["metrics"][name]["per_seed"]``
    holds the same numbers); ``config`` is the resolved config the run used.
    (Not :class:`snnjax.experiment.RunResult`, which is what an experiment hands the core.)
    """

    results: dict[str, Any]
    metrics: dict[str, np.ndarray] = field(repr=False)
    config: dict[str, Any]
    out_dir: Path | None

    @property
    def experiment(self) -> str:
        """The experiment's registered name."""
        return self.results["experiment"]

    @property
    def seed_ids(self) -> list[int]:
        """The global seed indices of the run: ``first_seed ... first_seed + seeds - 1``."""
        first = int(self.results.get("first_seed", 0))
        return list(range(first, first + int(self.results["seeds"])))


class RunStopped(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP stopped a run after its finished part was kept.

    ``signum`` is the signal (2, 15 or 1; ``snnjax run`` exits with ``128 + signum``);
    ``kept`` says in one line what was written (partial ``results.json``, checkpoint).
    A subclass of :class:`KeyboardInterrupt`, so an interrupted script stops as usual.
    """

    def __init__(self, signum: int, kept: str = ""):
        super().__init__(signum, kept)
        self.signum = signum
        self.kept = kept


def config_layers(config: Mapping[str, Any] | str | os.PathLike | None,
                  sets: Sequence[str] = ()) -> list[tuple[str, Mapping[str, Any]]]:
    """The ``(where, mapping)`` config layers of ``config`` then ``sets``, later layers winning.

    ``config`` is a mapping of config keys (values as in a TOML file: numbers, strings,
    booleans, lists) or the path of a TOML file (read as ``--config`` reads it);
    ``sets`` are ``"key=value"`` strings as ``--set`` takes them. Reads the file; checks
    nothing against an experiment (that is :func:`snnjax.config.resolve`'s job).
    """
    from . import config as cfgmod

    layers: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(config, (str, os.PathLike)):
        layers.append((f"config file {os.fspath(config)}", cfgmod.load_toml(config)))
    elif isinstance(config, Mapping):
        bad = [k for k in config if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"config keys must be strings, got {bad[0]!r} in the config mapping")
        layers.append(("the config mapping", dict(config)))
    elif config is not None:
        raise ConfigError(f"config must be a mapping of config keys or the path of a TOML file, "
                          f"got {type(config).__name__}")
    if isinstance(sets, str):
        sets = [sets]
    layers.append(("--set", cfgmod.parse_set(sets)))
    return layers


def run(experiment: str | None, config: Mapping[str, Any] | str | os.PathLike | None = None, *,
        seeds: int | None = None, first_seed: int | None = None, out: str | os.PathLike | None = None,
        resume: bool = False, registry: Any = None, sets: Sequence[str] = (), overwrite: bool = False,
        checkpoint_every: int = 1, progress: bool = False) -> RunResult:
    """Run ``experiment`` over ``seeds`` seeds (vmapped), as ``snnjax run`` does; return its results.

    Arguments mirror ``snnjax run``:

    - ``experiment``: a registered experiment name (``None`` only with ``resume=True``).
    - ``config``: a mapping of config keys (the keys ``--set`` takes) or a TOML file path;
      ``sets``: extra ``"key=value"`` strings, applied after ``config``.
    - ``seeds`` (default 1), ``first_seed`` (default 0): the global seed indices
      ``first_seed ... first_seed + seeds - 1``; with ``resume=True`` they default to the
      run's own, and differing values are refused.
    - ``out``: the run directory, handled as ``--out`` (a directory holding another run is
      refused unless ``overwrite=True``; a second concurrent run into it fails at once).
      ``out=None``: nothing is kept on disk: the run is made in a temporary directory that
      is removed afterwards, and the returned ``results`` lists no figures or artifacts.
    - ``resume=True``: continue the interrupted run in ``out`` from its checkpoint
      (``--resume out``); ``config``/``sets`` may only repeat its stored values.
    - ``registry``: a :class:`snnjax.plugins.Registry` to resolve the experiment and its
      plugins in (default: the installed plugins), e.g. ``build_registry([my_module])``.
    - ``checkpoint_every``: as ``--checkpoint-every``; ``progress``: a tqdm bar on stderr.

    Bad input raises a :class:`~snnjax.errors.SnnjaxError` (``ConfigError``,
    ``PluginError``, ``OutputError``, ...) before anything is compiled or written.
    Ctrl-C/SIGTERM/SIGHUP keep the finished part (``results.json`` with
    ``"complete": false`` and the checkpoint) and raise :class:`RunStopped`.
    """
    from .cli import execute_run

    if resume and out is None:
        raise ConfigError("resume=True continues the run in out: give the interrupted run's directory as out")
    if not resume and not isinstance(experiment, str):
        raise ConfigError(f"snnjax.run needs an experiment name (see `snnjax plugins`), got {experiment!r}")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ConfigError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    layers = config_layers(config, sets)
    config_file = os.fspath(config) if isinstance(config, (str, os.PathLike)) else None
    scratch = None if out is not None else Path(tempfile.mkdtemp(prefix="snnjax-run-"))
    args = argparse.Namespace(
        experiment=experiment, seeds=seeds, first_seed=first_seed, set=list(sets), config=config_file,
        config_layers=layers, out=None if resume else os.fspath(out if out is not None else scratch),
        resume=os.fspath(out) if resume else None, dry_run=False, quiet=not progress,
        checkpoint_every=checkpoint_every, overwrite=overwrite, registry=registry)
    try:
        _, resolved, doc, metrics = execute_run(args)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if scratch is not None:
        doc = {**doc, "figures": [], "artifacts": []}
    per_seed = {k: np.asarray(v) for k, v in metrics.items()}
    return RunResult(results=doc, metrics=per_seed, config=dict(resolved),
                     out_dir=None if scratch is not None else Path(args.out))
