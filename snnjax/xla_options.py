"""How the core asks XLA's CPU backend to compile and schedule the time loops of a network.

A training presentation is a ``lax.scan`` of a few thousand time steps whose body is
some 25–55 small kernels on arrays of tens to hundreds of elements. On a CPU their
dispatch, not their arithmetic, sets the time per step, and two of XLA's CPU settings
decide how much of it there is (measured with jax/jaxlib 0.10.2, ``docs/performance.md``,
"Fewer kernels per step"):

* **Copy insertion with region analysis** (``xla_cpu_copy_insertion_use_region_analysis``):
  without it XLA copies most small loop-carried arrays at the start of every iteration
  (12 of 34 kernels of a Diehl & Cook rest step, 15 of 54 of an input step); with it 3
  and 4 remain. It is a per-program compile option: :func:`compiler_options` returns it,
  and :class:`snnjax.loop.RunLoop` compiles every program with it on CPU.
* **The sequential schedule** (``--xla_cpu_enable_concurrency_optimized_scheduler=false``):
  XLA's default orders a loop body for concurrent execution of independent kernels, which
  costs a dependency-tracking dispatch per kernel; the sequential order runs them as one
  chain. With both, a one-seed Diehl & Cook (N = 100) training step took 3.9–4.6 µs instead
  of 8.9–9.2 µs. The schedule is read from ``XLA_FLAGS`` only (jaxlib 0.10 ignores it as a
  compile option), so it is a setting of the process: :func:`use_sequential_cpu_schedule`
  adds it to ``XLA_FLAGS`` before JAX starts its backends. The ``snnjax`` command does so;
  a program that uses snnjax as a library may call it first thing. It costs where one
  process runs many seeds of a wide network with all cores (Diehl & Cook N = 400, 8 seeds in
  one 2-core process: 0.87–0.89×), where XLA splits the seed-batched kernels over threads
  and the concurrent order overlaps them; one process per core (``snnjax run --first-seed``,
  ``snnjax merge``) avoids that case.

Neither changes an operation on the values: the same programs give bit-for-bit the same
results with and without them (the golden-value tests pass under both). Both are applied
only with the jaxlib versions they were measured on (an unknown ``XLA_FLAGS`` entry aborts
the process, so an untested jaxlib runs with XLA's defaults).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

__all__ = ["SEQUENTIAL_SCHEDULE_FLAG", "compiler_options", "use_sequential_cpu_schedule"]

#: Per-program compile options of every CPU program the core compiles.
CPU_COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_copy_insertion_use_region_analysis": True}

#: The ``XLA_FLAGS`` entry that selects the sequential schedule of a loop body's kernels.
SEQUENTIAL_SCHEDULE_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"

#: jaxlib releases ``(major, minor)`` these settings were measured and tested with.
VERIFIED_JAXLIB: tuple[tuple[int, int], ...] = ((0, 10),)


def _jaxlib_verified() -> bool:
    try:
        import jaxlib
    except ImportError:  # pragma: no cover - jax always brings jaxlib
        return False
    parts = jaxlib.__version__.split(".")
    try:
        release = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        return False
    return release in VERIFIED_JAXLIB


def compiler_options(platform: str) -> dict[str, Any]:
    """The compile options of a program for ``platform`` (``"cpu"``, ``"gpu"``, …): ``{}`` but on a verified CPU."""
    if platform != "cpu" or not _jaxlib_verified():
        return {}
    return dict(CPU_COMPILER_OPTIONS)


def use_sequential_cpu_schedule(environ: MutableMapping[str, str] | None = None) -> str | None:
    """Add :data:`SEQUENTIAL_SCHEDULE_FLAG` to ``XLA_FLAGS`` (``environ``: ``os.environ`` by default).

    Call it before the first JAX computation of the process. Returns ``None`` when the flag
    is in effect (added now or before), else why not: ``XLA_FLAGS`` already chooses the
    scheduler (the user's choice is kept), the installed jaxlib is not one the flag was
    verified with, or JAX's backends have started (they read ``XLA_FLAGS`` once).
    """
    env = os.environ if environ is None else environ
    flags = env.get("XLA_FLAGS", "")
    name = SEQUENTIAL_SCHEDULE_FLAG.split("=", 1)[0]
    if SEQUENTIAL_SCHEDULE_FLAG in flags.split():
        return None
    if name in flags:
        return f"XLA_FLAGS already sets {name.lstrip('-')}"
    if not _jaxlib_verified():
        return "the installed jaxlib is not one the sequential schedule was measured with"
    if environ is None:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            return "JAX's backends have started; call it before the first JAX computation"
    env["XLA_FLAGS"] = (flags + " " + SEQUENTIAL_SCHEDULE_FLAG).strip()
    return None
