"""The run loop: what the core does for every experiment, so that an experiment only declares.

An experiment hands the core per-seed pure functions and the phases of its run; the
:class:`RunLoop` of its :class:`~snnjax.experiment.RunContext` (``ctx.loop``) owns the
mechanics, as diffrax's ``diffeqsolve`` owns stepping, saving and progress:

* **Seeds as one program** — ``loop.batched(fn, shared=(…))`` turns ``fn(*args)`` written for
  one seed into a program over all the run's seeds: ``jax.vmap`` over the leading (seed) axis of
  every argument except the positions in ``shared`` (broadcast to every seed), the seed axis
  placed over a 1-D device mesh (:func:`snnjax.seeds.seed_mesh`: every device when the seed
  count divides evenly), compiled ahead of time once per argument shape, dtype and placement.
  Compile time is measured apart from run time (:attr:`RunLoop.timing`, stored in
  ``results.json["timing"]``). On CPU every program is compiled with
  :func:`snnjax.xla_options.compiler_options` (fewer loop-carried copies per time step; with
  ``library_reductions=False``, reductions compiled inline).
* **Randomness as named streams** — ``loop.fold(keys, tag, …)`` is ``fold_in`` per seed (the
  integer tags are the stream ids the documented reproductions use, so they do not move);
  ``loop.split(keys, n)`` splits every seed's key into ``n`` streams.
* **Phases of chunks** — ``carry = loop.phase(name, n_chunks, body, carry)`` runs
  ``carry = body(c, carry)`` for ``c = start … n_chunks − 1``, checkpoints the carry after each
  chunk (every ``--checkpoint-every``, with ``ctx.partial``, the results finished so far) and
  reports progress. On ``snnjax run --resume`` the chunks already done are skipped and their carry
  restored; a finished phase returns its stored carry without running. One checkpoint idiom for
  every experiment: the checkpoint holds every phase's ``(carry, chunks done)`` by name.

Experiments call none of ``jax.jit``, ``jax.vmap``, sharding, checkpoint or progress functions
themselves (``tests/test_layout.py`` checks it). For the result of a run to equal a resumed one,
a chunk's randomness must come from keys fixed by the chunk (``loop.fold(keys, c)``), never from
state kept outside ``carry``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jaxtyping import Array, Key

from .seeds import seed_mesh, shard_seeds
from .xla_options import compiler_options

__all__ = ["Program", "RunLoop"]


def _leaf_signature(x: Any) -> tuple:
    """What a compiled program depends on in one argument leaf: shape, dtype, weak type, placement."""
    if isinstance(x, jax.Array):
        # typed PRNG key arrays (``jax.random.key``) have no weak type
        return (x.shape, x.dtype, getattr(x, "weak_type", False), x.sharding)
    if isinstance(x, (bool, int, float, complex)):  # Python scalars are weakly typed under jit
        return ((), type(x).__name__, True, None)
    a = np.asarray(x)
    return (a.shape, a.dtype, False, None)


class Program:
    """One per-seed function batched over the run's seeds; compiled once per argument signature.

    Call it with the per-seed arguments stacked on a leading seed axis (the ``shared`` positions
    as they are, without that axis); it returns the function's output with a leading seed axis on
    every leaf. Its compiled forms are kept on the object (never in a process-wide table).
    """

    def __init__(self, fn: Callable[..., Any], loop: RunLoop, shared: Sequence[int], name: str,
                 library_reductions: bool = True):
        self._fn = fn
        self._loop = loop
        self._shared = frozenset(shared)
        self.name = name
        self.library_reductions = bool(library_reductions)
        self._compiled: dict[tuple, Any] = {}

    def __call__(self, *args: Any) -> Any:
        mesh = self._loop.mesh
        placed = tuple(a if i in self._shared else shard_seeds(a, mesh) for i, a in enumerate(args))
        leaves, treedef = jax.tree_util.tree_flatten(placed)
        key = (treedef, tuple(_leaf_signature(x) for x in leaves))
        exe = self._compiled.get(key)
        if exe is None:
            in_axes = tuple(None if i in self._shared else 0 for i in range(len(args)))
            t0 = time.perf_counter()
            platform = jax.default_backend() if mesh is None else mesh.devices.flat[0].platform
            lowered = jax.jit(jax.vmap(self._fn, in_axes=in_axes)).lower(*placed)
            exe = lowered.compile(compiler_options=compiler_options(platform,
                                                                     library_reductions=self.library_reductions))
            self._loop._count_compile(self.name, time.perf_counter() - t0)
            self._compiled[key] = exe
        return exe(*placed)


class RunLoop:
    """The core's loop over one run's seeds (see the module docstring).

    Made by the core for every run (``ctx.loop``); an experiment never builds one.
    """

    def __init__(self, ctx: Any):
        self._ctx = ctx
        self.n_seeds: int = int(ctx.n_seeds)
        self.mesh = seed_mesh(self.n_seeds)
        self._store = None
        #: compile and phase times of this run: ``{"compile_s", "compiles": {program: count},
        #: "phases": {name: {"chunks_run", "wall_s", "log": [{"chunk", "wall_s"}, …]}}}`` — the
        #: per-chunk log of the chunks this process ran (wall time includes compiles made in a chunk)
        self.timing: dict[str, Any] = {"compile_s": 0.0, "compiles": {}, "phases": {}}

    @classmethod
    def local(cls, n_seeds: int | None = None) -> RunLoop:
        """A loop outside a run (scripts, tests, benchmarks that drive model code directly).

        Its programs and streams behave as a run's; its phases run in memory (no checkpoint, no
        progress line). With ``n_seeds`` the seed axis is placed over the devices as in a run of that
        many seeds; without it, programs run on the default device for any seed count.
        """
        from types import SimpleNamespace

        ctx = SimpleNamespace(n_seeds=n_seeds or 1, checkpoint=None, partial=None, config={},
                              progress=lambda *a, **k: None)
        return cls(ctx)

    # ------------------------------------------------------------------ programs

    def batched(self, fn: Callable[..., Any], *, shared: Sequence[int] = (), name: str | None = None,
                library_reductions: bool = True) -> Program:
        """``fn`` (written for one seed) as one program over every seed of the run.

        Args:
            fn: a pure per-seed function of positional array (pytree) arguments.
            shared: positions of the arguments that every seed shares (no seed axis).
            name: how the program is called in :attr:`timing` (default: ``fn``'s name).
            library_reductions: ``False`` compiles the program's reductions inline on CPU instead of
                as library calls (:func:`snnjax.xla_options.compiler_options`): faster for many small
                reductions in a scan; a float sum may round otherwise, so keep one setting per program.
        """
        return Program(fn, self, shared, name or getattr(fn, "__name__", "program"), library_reductions)

    def _count_compile(self, name: str, seconds: float) -> None:
        self.timing["compile_s"] += seconds
        self.timing["compiles"][name] = self.timing["compiles"].get(name, 0) + 1

    # ------------------------------------------------------------------ randomness

    def fold(self, keys: Key[Array, " seeds"], *tags: int | Array) -> Key[Array, " seeds"]:
        """Every seed's key folded with ``tags`` in turn: ``fold_in(…fold_in(key, tags[0])…, tags[-1])``."""
        def one(k):
            for t in tags:
                k = jax.random.fold_in(k, t)
            return k

        return jax.vmap(one)(keys)

    def split(self, keys: Key[Array, " seeds"], n: int) -> tuple[Key[Array, " seeds"], ...]:
        """``n`` streams per seed: ``split(key, n)[j]`` of every seed, as ``n`` arrays of ``[seeds]`` keys."""
        parts = jax.vmap(lambda k: jax.random.split(k, n))(keys)
        return tuple(parts[:, j] for j in range(n))

    # ------------------------------------------------------------------ phases

    def _phases(self) -> Any:
        if self._store is None:
            from .checkpoint import PhaseStore

            self._store = PhaseStore(self._ctx)
        return self._store

    def phase(self, name: str, n_chunks: int, body: Callable[[int, Any], Any], carry: Any, *,
              unit: str = "chunks", report: Callable[[int], tuple[int, int]] | None = None,
              keep: Callable[[Any], Any] | None = None) -> Any:
        """Run chunks ``start … n_chunks − 1`` of phase ``name``: ``carry = body(c, carry)``.

        Args:
            name: the phase's name, unique within the run (its key in the checkpoint).
            n_chunks: how many chunks the phase has.
            body: ``body(c, carry) -> carry``; host code that calls :meth:`batched` programs. It may
                set ``ctx.partial`` (the results finished so far), which is checkpointed with ``carry``.
            carry: the phase's initial carry (a pytree of arrays); on a resumed run only its
                structure is used.
            unit: what a chunk is, for the progress line.
            report: ``report(chunks_done) -> (done, total)`` in ``unit`` (default: chunks).
            keep: what of the final carry the run still needs once the phase has ended, as a
                selection ``keep(carry) -> subtree`` (no computation: it is also applied to the
                initial carry to learn the structure). The checkpoint then holds only that part
                (e.g. an estimator's output, not its state); a resumed run that had finished the
                phase gets it back without running a chunk.

        Returns:
            the carry after the last chunk (``keep(carry)`` with ``keep``).
        """
        store = self._phases()
        if keep is not None:
            kept = store.get(f"{name}.kept", keep(carry))
            if kept is not None:
                return kept
        stored = store.get(name, (carry, np.int32(0)))
        start = 0
        if stored is not None:
            carry, start = stored[0], int(stored[1])
        entry = self.timing["phases"].setdefault(name, {"chunks_run": 0, "wall_s": 0.0, "log": []})
        for c in range(start, n_chunks):
            t0 = time.perf_counter()
            carry = body(c, carry)
            store.put(name, (carry, np.int32(c + 1)))
            seconds = time.perf_counter() - t0
            entry["chunks_run"] += 1
            entry["wall_s"] += seconds
            entry["log"].append({"chunk": c, "wall_s": round(seconds, 4)})
            done, total = report(c + 1) if report is not None else (c + 1, n_chunks)
            self._ctx.progress(done, total, unit)
        if keep is None:
            return carry
        kept = keep(carry)
        store.put(f"{name}.kept", kept, drop=(name,))
        return kept

