"""The ``snnjax`` command line.

``snnjax run EXPERIMENT [--seeds N] [--first-seed K] [--set key=value ...] [--config FILE.toml] [--out DIR]``
``snnjax run --resume DIR`` continues an interrupted run from its last checkpoint.
``snnjax plugins [--json]``, ``snnjax data``, ``snnjax plot RUN_DIR``,
``snnjax report RUN_DIR... [--out FILE.md]``, ``snnjax merge OUT_DIR RUN_DIR...``,
``snnjax export-nir RUN_DIR OUT.nir [--seed I] [--drop-delays]``.

Every error a user can cause is reported as one line, ``error: ...``, with exit
status 2, before anything is compiled; so are unusable output paths (an existing
file, a path below a file, a read-only location) in every command. Ctrl-C,
SIGTERM and SIGHUP during a run stop it cleanly: the pending checkpoint is
flushed, what was finished is written (``results.json`` with ``"complete":
false``) and the exit status is 130, 143 or 129. A run directory holds one run
(:mod:`snnjax.rundir`): a new run into another run's directory is refused unless
``--overwrite``, and a second concurrent run into it fails at once. A closed
stdout (``snnjax plugins | head -3``) ends the command quietly (status 141).
``snnjax run`` hands its parsed arguments to :func:`snnjax.run` (:mod:`snnjax.api`),
which calls :func:`execute_run` here: the CLI and the Python API are one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, SnnjaxError
from .xla_options import use_cpu_loop_flags


class _Progress:
    """A tqdm bar on stderr, created lazily per phase."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bar = None
        self._what = None

    def __call__(self, done: int, total: int, what: str = "") -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self._bar is None or what != self._what or total != self._bar.total:
            self.close()
            self._bar = tqdm(total=total, desc=what or "run", file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
            self._what = what
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _default_out(name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{name.replace('/', '_')}-{stamp}"


def prepare_run(name: str, sets: Sequence[str] = (), config_file: str | None = None, seeds: int = 1,
                registry: Any = None, first_seed: int = 0,
                layers: Sequence[tuple[str, Any]] | None = None) -> tuple[Any, dict[str, Any]]:
    """Resolve the experiment and its config, validating everything (no compile, no data).

    ``layers`` (``(where, mapping)`` pairs, from :func:`snnjax.api.config_layers`) replaces
    ``config_file`` and ``sets`` when given.
    """
    from . import config as cfgmod
    from .plugins import get_registry

    registry = registry or get_registry()
    experiment = registry.create("experiment", name)
    cfgmod.check_seed_range(seeds, first_seed)
    if layers is None:
        layers = []
        if config_file:
            layers.append((f"config file {config_file}", cfgmod.load_toml(config_file)))
        layers.append(("--set", cfgmod.parse_set(sets)))
    config = cfgmod.resolve(experiment.defaults, *layers, registry=registry)
    validate_config(experiment, config)
    return experiment, config


def validate_config(experiment: Any, config: dict[str, Any], where: str | None = None) -> None:
    """The one validation of a resolved config, for ``--dry-run``, a run and ``--resume`` alike.

    The checks every experiment gets (:func:`snnjax.config.check_values`: finite
    numbers, a seed a 32-bit PRNG key holds), then the experiment's own ``validate``.
    """
    from . import config as cfgmod

    cfgmod.check_values(config, where)
    if experiment.validate is not None:
        experiment.validate(config)


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP during a run, handled like Ctrl-C (exit status 128 + signal number)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`_Stopped` (like Ctrl-C's KeyboardInterrupt) for the block."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise _Stopped(signum)

    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, stop) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _ignore_stop_signals() -> None:
    """While the finished part is being saved, a second SIGTERM/SIGHUP must not interrupt that."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_IGN)


def cmd_run(args: argparse.Namespace) -> int:
    """``snnjax run``: the arguments handed to :func:`snnjax.run` (``--dry-run``: only its checks)."""
    from .api import RunStopped, run
    from .results import summary_table

    if getattr(args, "resume", None):
        if getattr(args, "overwrite", False):
            raise ConfigError("--resume continues a run and --overwrite replaces one: give only one of them")
    elif args.experiment is None:
        raise ConfigError("snnjax run needs an EXPERIMENT name (see `snnjax plugins`), or --resume DIR")
    if args.dry_run:
        experiment, config = _prepare(args, getattr(args, "registry", None))
        print(json.dumps(_run_header(experiment.name, args, config), indent=1))
        return 0
    resume = getattr(args, "resume", None)
    out = resume or args.out
    if resume and args.out is not None and Path(args.out).resolve() != Path(resume).resolve():
        raise ConfigError(f"--resume continues a run exactly as it started, in its own directory: drop --out "
                          f"{args.out} (results go to {resume}).")
    if out is None:
        out = _default_out(args.experiment)
    try:
        done = run(args.experiment, args.config, sets=args.set or (), seeds=args.seeds, first_seed=args.first_seed,
                   out=out, resume=bool(resume), registry=getattr(args, "registry", None),
                   overwrite=getattr(args, "overwrite", False), checkpoint_every=getattr(args, "checkpoint_every", 1),
                   progress=not args.quiet)
    except RunStopped as exc:
        return 128 + exc.signum
    doc = done.results
    print(f"{doc['experiment']}: {_seeds_text(doc['seeds'], doc['first_seed'])}, {doc['wall_time_s']:.1f} s, "
          f"results in {done.out_dir}")
    print(summary_table(doc))
    return 0


def _prepare(args: argparse.Namespace, registry: Any) -> tuple[Any, dict[str, Any]]:
    """The experiment and its validated config, for a new run or ``--resume`` (fills in args' defaults)."""
    from .plugins import get_registry

    registry = registry or get_registry()
    if getattr(args, "resume", None):
        return _prepare_resume(args, registry)
    if args.seeds is None:
        args.seeds = 1
    if args.first_seed is None:
        args.first_seed = 0
    return prepare_run(args.experiment, args.set or (), args.config, args.seeds, registry,
                       first_seed=args.first_seed, layers=getattr(args, "config_layers", None))


def execute_run(args: argparse.Namespace) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The run behind :func:`snnjax.run`: checks, lock, run, ``results.json``; ``(name, config, doc, metrics)``.

    ``args`` holds what ``snnjax run`` parses, plus ``registry`` and ``config_layers``
    (the ``(where, mapping)`` config layers; ``None``: from ``--config``/``--set``).
    """
    from .plugins import get_registry
    from .rundir import (
        OutputError,
        RunLock,
        check_output_dir,
        describe_os_error,
        holds_run,
    )

    registry = getattr(args, "registry", None) or get_registry()
    experiment, config = _prepare(args, registry)
    out = Path(args.out) if args.out else _default_out(experiment.name)
    check_output_dir(out, "--out")
    created = _missing_parents(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = RunLock(out).acquire()
    except (OSError, OutputError) as exc:
        _remove_empty(created)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(describe_os_error(exc, f"--out {str(out)!r}")) from exc
    try:
        resume = bool(getattr(args, "resume", None))
        held = holds_run(out)
        if held and not resume and not getattr(args, "overwrite", False):
            raise OutputError(f"{str(out)!r} holds another run ({', '.join(held)}); nothing was changed. Continue "
                              f"it with `snnjax run --resume {out}`, replace it with --overwrite, or give another --out")
        checkpointer = _make_checkpointer(args, out, experiment.name, config)  # on --resume: checks the checkpoint
        if held and not resume:
            _remove_old_run(out)
        with run_precision(config):
            doc, metrics = _run_in(out, experiment, config, args, registry, checkpointer, resume=resume)
        return experiment.name, config, doc, metrics
    finally:
        lock.release()
        _remove_empty(created)


def run_precision(config: Mapping[str, Any]) -> Any:
    """The float precision of a run, as a context: ``x64 = true`` computes in float64.

    An experiment that declares an ``x64`` key gets its body run (every trace and
    compile included) under ``jax.enable_x64(config["x64"])``; the process-wide
    setting is restored when the run ends, so a later run in the same process is not
    affected. Without the key the process setting is left as it is (float32 by default).
    """
    import contextlib

    import jax

    if "x64" not in config:
        return contextlib.nullcontext()
    return jax.enable_x64(bool(config["x64"]))


def _remove_empty(dirs: Sequence[Path]) -> None:
    """Remove the directories in ``dirs`` (deepest first) that are empty."""
    for d in dirs:
        try:
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        except OSError:
            pass


def _remove_old_run(out: Path) -> None:
    """``--overwrite``: remove the previous run's files (its run files, figures and arrays) before this run starts."""
    from .rundir import RUN_MARKERS

    names = set(RUN_MARKERS)
    try:
        old = json.loads((out / "results.json").read_text())
        for f in list(old.get("figures") or []) + list(old.get("artifacts") or []):
            if isinstance(f, str):
                names.add(Path(f).name)
    except (OSError, ValueError, AttributeError):
        pass
    for name in sorted(names):
        (out / name).unlink(missing_ok=True)
    print(f"--overwrite: removed the previous run's files in {out}", file=sys.stderr)


def _run_in(out: Path, experiment: Any, config: dict[str, Any], args: argparse.Namespace, registry: Any,
            checkpointer: Any, *, resume: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``experiment`` into the locked directory ``out``; keep every finished result whatever happens.

    The experiment writes its figures and arrays into a staging directory
    ``out/.staging-PID``; ``results.json`` is written first, then the staged
    files are renamed into ``out`` (so a truncated file never sits under a
    final name, and a run's files never mix with another's).
    """
    import shutil

    from . import data
    from .api import RunStopped
    from .experiment import RunContext
    from .results import build_results, to_jsonable, write_json_atomic
    from .rundir import OutputError, describe_os_error

    for stale in out.glob(".staging-*"):  # left by a killed run (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    stage = out / f".staging-{os.getpid()}"
    try:
        write_json_atomic(out / "config.json", _run_header(experiment.name, args, config))
        stage.mkdir()
    except OSError as exc:
        raise OutputError(describe_os_error(exc, f"the run directory {str(out)!r}")) from exc
    progress = _Progress(enabled=not args.quiet)
    ctx = RunContext(config=config, n_seeds=args.seeds, out_dir=stage, registry=registry, progress=progress,
                     checkpoint=checkpointer, first_seed=args.first_seed)
    start = time.perf_counter()

    def results(result: Any, complete: bool, provenance: list, **more: Any) -> dict[str, Any]:
        doc = build_results(experiment.name, args.seeds, config, result, time.perf_counter() - start,
                            experiment.thesis, complete=complete, first_seed=args.first_seed)
        doc["data"] = provenance
        if ctx._loop is not None:  # compile time apart from run time, per phase (snnjax.loop.RunLoop.timing)
            doc["timing"] = to_jsonable(ctx._loop.timing)
        doc.update(more)
        return doc

    def keep_partial(provenance: list, why: str) -> str:
        """Flush the checkpoint and write the finished part; a one-line account of what was kept."""
        _ignore_stop_signals()
        progress.close()
        shutil.rmtree(stage, ignore_errors=True)  # unfinished figures and arrays: never kept, and they free space
        kept = _flush_checkpoint(checkpointer)
        partial = getattr(ctx, "partial", None)
        if partial is None:
            return kept or "no result was finished"
        doc = results(partial, False, provenance, stopped_by=why)
        doc["figures"] = []
        try:
            write_json_atomic(out / "results.json", doc)
        except OSError as exc:
            return f"{kept}; could not write results.json ({exc.strerror or exc})".lstrip("; ")
        return f"kept the finished part in {out / 'results.json'}" + (f"; {kept}" if kept else "")

    try:
        with data.recording_provenance() as provenance, _stop_signals():
            try:
                result = experiment.run(ctx)
            except SnnjaxError:
                # bad input found while the experiment prepared (e.g. data checks): leave nothing behind
                if ctx.partial is None and not (checkpointer is not None and checkpointer.exists()):
                    progress.close()
                    if not resume:  # the config.json this run wrote; the directory is as the checks left it
                        (out / "config.json").unlink(missing_ok=True)
                    raise
                keep_partial(provenance, "error")
                raise
            except KeyboardInterrupt as exc:
                signum = getattr(exc, "signum", 2)
                what, label = {2: ("interrupted", "interrupted"), 15: ("terminated (SIGTERM)", "terminated"),
                               1: ("hung up (SIGHUP)", "hangup")}.get(signum, ("stopped", "stopped"))
                kept = keep_partial(provenance, label)
                print(f"\n{what}: {kept}", file=sys.stderr)
                raise RunStopped(signum, kept) from exc
            except OSError as exc:
                kept = keep_partial(provenance, "error")
                raise OutputError(describe_os_error(exc, f"the run's files in {str(out)!r}")
                                  + f"; {kept}") from exc
            except Exception:
                kept = keep_partial(provenance, "error")
                print(f"\nthe run failed: {kept}", file=sys.stderr)
                raise
            progress.close()
            _ignore_stop_signals()
            doc = results(result, True, provenance)
        staged = sorted(p for p in stage.rglob("*") if p.is_file())
        doc["figures"] = [str(out / Path(f).relative_to(stage)) if _below(Path(f), stage) else str(f)
                          for f in result.figures if Path(f).is_file()]
        doc["artifacts"] = [str(p.relative_to(stage)) for p in staged]
        try:
            write_json_atomic(out / "results.json", doc)  # the results first, then the files beside them
        except OSError as exc:
            kept = _flush_checkpoint(checkpointer)
            raise OutputError(describe_os_error(exc, f"{str(out / 'results.json')!r}") + f"; {kept}") from exc
        for p in staged:
            target = out / p.relative_to(stage)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(p, target)
            except OSError as exc:
                print(f"warning: could not move {p.name} into {out}: {exc}", file=sys.stderr)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return doc, dict(result.metrics)


def _below(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _run_header(name: str, args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    """What ``config.json`` holds: the experiment, its seeds and its resolved config."""
    return {"experiment": name, "seeds": args.seeds, "first_seed": args.first_seed, "config": config}


def _seeds_text(n: int, first: int) -> str:
    if first == 0:
        return f"{n} seed(s)"
    return f"{n} seed(s) ({first}–{first + n - 1})"


def _missing_parents(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for p in [path, *path.parents]:
        if p.exists():
            break
        missing.append(p)
    return missing


def _prepare_resume(args: argparse.Namespace, registry: Any) -> tuple[Any, dict[str, Any]]:
    """``snnjax run --resume DIR``: the experiment and config of the run in ``DIR`` (its config.json).

    Command-line settings that would change the run (another experiment,
    ``--seeds``, ``--set``, ``--config``, ``--out``) are refused unless they
    agree with what the run started with.
    """
    from . import config as cfgmod

    run_dir = Path(args.resume)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"--resume {run_dir}: there is no config.json there, so it is not the output directory "
                          f"of a snnjax run. Give the --out directory of the interrupted run.")
    try:
        saved = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--resume {run_dir}: {cfg_path} is not valid JSON ({exc}); it cannot be resumed. "
                          f"Start a new run instead.") from exc
    if not isinstance(saved, dict) or not {"experiment", "seeds", "config"} <= set(saved):
        raise ConfigError(f"--resume {run_dir}: {cfg_path} lacks 'experiment', 'seeds' or 'config'; it cannot be "
                          f"resumed. Start a new run instead.")
    name, seeds, stored, first = saved["experiment"], saved["seeds"], saved["config"], saved.get("first_seed", 0)
    damaged = f"--resume {run_dir}: {cfg_path} is damaged"
    if not isinstance(name, str):
        raise ConfigError(f"{damaged}: 'experiment' must be an experiment name, got {name!r}. Start a new run instead.")
    if not isinstance(stored, dict):
        raise ConfigError(f"{damaged}: 'config' must be a table of config keys, got {type(stored).__name__} "
                          f"{stored!r:.60}. Start a new run instead.")
    for key, value in (("seeds", seeds), ("first_seed", first)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "seeds" else 0):
            raise ConfigError(f"{damaged}: '{key}' must be an integer >= {1 if key == 'seeds' else 0}, got "
                              f"{value!r}. Start a new run instead.")
    try:
        cfgmod.check_seed_range(seeds, first)
    except ConfigError as exc:
        raise ConfigError(f"{damaged}: {exc}") from exc
    again = "--resume continues a run exactly as it started"
    if args.experiment is not None and args.experiment != name:
        raise ConfigError(f"{again}: {run_dir} is a run of {name!r}, not {args.experiment!r}. Drop the experiment "
                          f"name, or start a new run with another --out.")
    if args.seeds is not None and args.seeds != seeds:
        raise ConfigError(f"{again}: {run_dir} has {seeds} seed(s), not --seeds {args.seeds}. Drop --seeds, or "
                          f"start a new run with another --out.")
    if args.first_seed is not None and args.first_seed != first:
        raise ConfigError(f"{again}: {run_dir} starts at seed {first}, not --first-seed {args.first_seed}. Drop "
                          f"--first-seed, or start a new run with another --out.")
    if args.out is not None and Path(args.out).resolve() != run_dir.resolve():
        raise ConfigError(f"{again}, in its own directory: drop --out {args.out} (results go to {run_dir}).")
    experiment = registry.create("experiment", name)
    where = str(cfg_path)
    config = cfgmod.resolve(experiment.defaults, (where, stored), registry=registry)
    asked = getattr(args, "config_layers", None)
    if asked is None:
        asked = []
        if args.config:
            asked.append((f"config file {args.config}", cfgmod.load_toml(args.config)))
        if args.set:
            asked.append(("--set", cfgmod.parse_set(args.set)))
    asked = [(where, layer) for where, layer in asked if layer]
    if asked:
        wanted = cfgmod.resolve(experiment.defaults, (where, stored), *asked, registry=registry)
        diffs = [f"{k}={wanted[k]!r} conflicts with {k}={config[k]!r}" for k in wanted if wanted[k] != config[k]]
        if diffs:
            raise ConfigError(f"{again}: " + "; ".join(diffs) + f" in {where}. Drop the conflicting --set/--config, "
                              f"or start a new run with another --out.")
    validate_config(experiment, config, where)
    args.experiment, args.seeds, args.first_seed, args.out = name, seeds, first, str(run_dir)
    return experiment, config


def _make_checkpointer(args: argparse.Namespace, out: Path, name: str, config: dict[str, Any]) -> Any:
    """The run's :class:`~snnjax.checkpoint.Checkpointer`; on --resume, check its checkpoint now."""
    from .checkpoint import Checkpointer

    every = getattr(args, "checkpoint_every", 1)
    ckpt = Checkpointer(out, every, experiment=name, config=config, n_seeds=args.seeds,
                        resume=bool(getattr(args, "resume", None)))
    if not ckpt.resume and ckpt.exists():
        ckpt.path.unlink()  # a fresh run in an old directory: never resume someone else's state
        print(f"removed the old checkpoint in {out}: this is a fresh run", file=sys.stderr)
    if ckpt.resume:
        meta = ckpt.peek()
        if meta is None:
            print(f"no checkpoint in {out} yet: starting from the first chunk", file=sys.stderr)
        else:
            print(f"resuming {out} from its checkpoint: {meta['chunk']} chunk(s) done", file=sys.stderr)
    return ckpt


def _flush_checkpoint(ckpt: Any) -> str:
    """On an interruption or failure: make sure the last finished chunk's checkpoint is on disk; say so."""
    if ckpt is None:
        return ""
    try:
        ckpt.flush()
    except Exception as exc:  # noqa: BLE001 - keep the partial results even if this fails
        failed = f"could not write the last checkpoint ({type(exc).__name__}: {exc})"
        if ckpt.last_written is None:
            return failed
        return (f"{failed}; the one after chunk {ckpt.last_written} in {ckpt.path} is intact: continue with "
                f"`snnjax run --resume {ckpt.out_dir}`")
    if ckpt.last_written is not None:
        return (f"checkpoint after chunk {ckpt.last_written} in {ckpt.path}; continue with "
                f"`snnjax run --resume {ckpt.out_dir}`")
    return ""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def cmd_plot(args: argparse.Namespace) -> int:
    from .report import load_results, plot_run
    from .rundir import check_output_dir

    load_results(args.run_dir)  # a missing or damaged results.json first
    if args.out:
        check_output_dir(args.out, "plot --out")
    paths = plot_run(args.run_dir, out_dir=args.out)
    if not paths:
        print(f"{args.run_dir}: nothing to plot (no curve, responses_*, weights.npz or raster.npz)", file=sys.stderr)
    for path in paths:
        print(path)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import report
    from .rundir import atomic_write, check_output_file

    if args.out:
        check_output_file(args.out, "report --out")
    text = report(args.run_dirs)
    if args.out:
        out = Path(args.out)
        atomic_write(out, lambda fh: fh.write(text.encode("utf-8")))
        print(out)
    else:
        print(text, end="")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from .report import load_results, plot_run
    from .results import merge_results, summary_table, write_json_atomic
    from .rundir import OutputError, RunLock, check_output_dir, holds_run

    out = Path(args.out)
    check_output_dir(out, "merge OUT_DIR")
    if out.is_dir() and holds_run(out):
        raise OutputError(f"{out} already holds a run ({', '.join(holds_run(out))}); merge into a new directory")
    docs = [load_results(d) for d in args.run_dirs]
    doc = merge_results(docs, [str(d) for d in args.run_dirs], allow_mixed=getattr(args, "allow_mixed", False))
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        if holds_run(out):
            raise OutputError(f"{out} already holds a run ({', '.join(holds_run(out))}); merge into a new directory")
        write_json_atomic(out / "results.json", doc)
        write_json_atomic(out / "config.json", {"experiment": doc["experiment"], "seeds": doc["seeds"],
                                                "first_seed": doc["first_seed"], "seed_ids": doc["seed_ids"],
                                                "config": doc["config"]})
        try:
            doc["figures"] = [str(p) for p in plot_run(out)]
            write_json_atomic(out / "results.json", doc)
        except Exception as exc:  # noqa: BLE001 - the merged results are written; figures are extra
            print(f"warning: figures not drawn ({type(exc).__name__}: {exc}); redraw with `snnjax plot {out}`",
                  file=sys.stderr)
    print(f"{doc['experiment']}: {doc['seeds']} seeds from {len(docs)} runs, results in {out}")
    print(summary_table(doc))
    return 0


def cmd_export_nir(args: argparse.Namespace) -> int:
    from snnjax_plugins.nir_io import export_nir, load_run, write_nir

    from .report import check_weights_file
    from .rundir import check_output_file

    check_output_file(args.out, "export-nir OUT.nir")
    check_weights_file(Path(args.run_dir) / "weights.npz", ranks=(2, 3))
    state, netcfg = load_run(args.run_dir, seed_index=args.seed)
    graph = export_nir(state, netcfg, delays="drop" if args.drop_delays else "nir")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        write_nir(graph, partial)  # HDF5 is written in place: write beside, then rename (atomic)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    print(f"{out}: NIR graph of seed {args.seed} of {args.run_dir} ({len(graph.nodes)} nodes; "
          f"delays {graph.metadata['snnjax_delays']})")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import get_registry

    registry = get_registry()
    infos = registry.all()
    if registry.filter_note:
        print(registry.filter_note, file=sys.stderr)
    if args.json:
        print(json.dumps([{"kind": p.kind, "name": p.name, "doc": p.doc, "distribution": p.distribution,
                           "module": p.module} for p in infos], indent=1))
        return 0
    for kind in registry.kinds():
        names = [p for p in infos if p.kind == kind]
        print(f"{kind}s:" if not kind.endswith("s") else f"{kind}:")
        if not names:
            print("  (none)")
        width = max((len(p.name) for p in names), default=0)
        for p in names:
            print(f"  {p.name.ljust(width)}  {p.doc}  [{p.distribution}]")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from . import data

    rows = data.describe(data_dir=args.data_dir)
    width = max((len(r[0]) for r in rows), default=0)
    for name, description, location in rows:
        print(f"{name.ljust(width)}  {location}")
        if args.verbose:
            print(f"{' ' * width}  {description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snnjax", description="Spiking neural networks with local learning rules, in JAX.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run an experiment over one or many seeds")
    run.add_argument("experiment", nargs="?", help="experiment name (see `snnjax plugins`); omitted with --resume")
    run.add_argument("--seeds", type=int, default=None, help="number of seeds, run at once with jax.vmap (default 1)")
    run.add_argument("--first-seed", type=int, default=None, metavar="K",
                     help="index of the first seed (default 0): --seeds 16 --first-seed 16 computes seeds 16-31 of a "
                          "32-seed run, e.g. in a second process; `snnjax merge` joins the parts")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    run.add_argument("--config", metavar="FILE.toml", help="a TOML config file")
    run.add_argument("--out", metavar="DIR", help="output directory (default runs/EXPERIMENT-TIMESTAMP)")
    run.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--resume", metavar="DIR",
                     help="continue the interrupted run in DIR from its last checkpoint (same experiment, config "
                          "and seeds, read from DIR/config.json)")
    run.add_argument("--checkpoint-every", type=_positive_int, default=1, metavar="N",
                     help="write a checkpoint after every N-th chunk of work (default 1)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the run already in --out DIR (without it, a directory holding another run's "
                          "config.json, results.json or checkpoint.npz is refused)")
    run.set_defaults(func=cmd_run)

    plugins = sub.add_parser("plugins", help="list the registered plugins by kind")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(func=cmd_plugins)

    data = sub.add_parser("data", help="list datasets and where each would be loaded from")
    data.add_argument("--data-dir", help="a directory of IDX files or prepared tfds data")
    data.add_argument("-v", "--verbose", action="store_true")
    data.set_defaults(func=cmd_data)

    plot = sub.add_parser("plot", help="(re)draw a run's figures from its results.json")
    plot.add_argument("run_dir", metavar="RUN_DIR", help="a run's output directory")
    plot.add_argument("--out", metavar="DIR", help="where to write the figures (default RUN_DIR)")
    plot.set_defaults(func=cmd_plot)

    rep = sub.add_parser("report", help="a Markdown table comparing runs (mean ± std per metric)")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="runs' output directories")
    rep.add_argument("--out", metavar="FILE.md", help="write the table to FILE.md (default: print it)")
    rep.set_defaults(func=cmd_report)

    merge = sub.add_parser("merge", help="join runs of one experiment and config on disjoint seeds into one run")
    merge.add_argument("out", metavar="OUT_DIR", help="a new directory for the merged results.json and figures")
    merge.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="the runs' output directories")
    merge.add_argument("--allow-mixed", action="store_true",
                       help="merge runs made with different snnjax/JAX/NumPy versions or backends (each part's "
                            "versions are kept under merged_from)")
    merge.set_defaults(func=cmd_merge)

    nir_p = sub.add_parser("export-nir", help="write a trained run's frozen inference network as a NIR graph")
    nir_p.add_argument("run_dir", metavar="RUN_DIR", help="a supervised-stdp or diehl-cook run's output directory")
    nir_p.add_argument("out", metavar="OUT.nir", help="the NIR (HDF5) file to write")
    nir_p.add_argument("--seed", type=int, default=0, metavar="I", help="which seed of the run (default 0)")
    nir_p.add_argument("--drop-delays", action="store_true",
                       help="leave out the S2/S3 delays (for NIR back ends without Delay nodes; changes spike timing)")
    nir_p.set_defaults(func=cmd_export_nir)
    return parser


def main(argv: Sequence[str] | None = None, registry: Any = None) -> int:
    """Run the command line ``argv``; ``registry`` replaces the installed plugins (for tests)."""
    # XLA's CPU loop settings, before JAX starts (snnjax.xla_options; what XLA_FLAGS already sets is kept)
    use_cpu_loop_flags()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.registry = registry
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except SnnjaxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _quiet_stdout()
        return 141  # like a process killed by SIGPIPE, which is what shells expect of `... | head`
    except OSError as exc:
        from .rundir import describe_os_error

        print(f"error: {describe_os_error(exc, str(exc.filename or 'a file'))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def _quiet_stdout() -> None:
    """After a closed pipe: send what is left on stdout to /dev/null (no second error at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
