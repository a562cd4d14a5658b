"""How the core asks XLA's CPU backend to compile and schedule the time loops of a network.

A training presentation is a ``lax.scan`` of a few thousand time steps whose body is
some 25–55 small kernels on arrays of tens to hundreds of elements. On a CPU their
dispatch, not their arithmetic, sets the time per step, and three of XLA's CPU settings
decide how much of it there is (measured with jax/jaxlib 0.10.2, ``docs/performance.md``,
"Time steps as whole compiled loops"):

* **Copy insertion with region analysis** (``xla_cpu_copy_insertion_use_region_analysis``):
  without it XLA copies most small loop-carried arrays at the start of every iteration
  (12 of 34 kernels of a Diehl & Cook rest step, 15 of 54 of an input step); with it 3
  and 4 remain. It is a per-program compile option: :func:`compiler_options` returns it,
  and :class:`snnjax.loop.RunLoop` compiles every program with it on CPU.
* **The sequential schedule** (``--xla_cpu_enable_concurrency_optimized_scheduler=false``):
  XLA's default orders a loop body for concurrent execution of independent kernels, which
  costs a dependency-tracking dispatch per kernel; the sequential order runs them as one
  chain. With region analysis, a one-seed Diehl & Cook (N = 100) training step took about
  4 µs instead of 9.
* **Small loops as one function** (``--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=…``):
  XLA's CPU backend compiles a ``while`` loop that holds no scatter, sort or custom call as
  one function instead of a sequence of kernels, when the bytes its body touches are below
  this threshold; snnjax sets it high enough for every loop (2**40 bytes). A model's time
  step benefits when it writes its rows with dynamic-update-slices instead of a scatter (the
  bundled network does so for one seed): a one-seed Diehl & Cook (N = 100) step then takes
  about 1.8 µs.

The last two are read from ``XLA_FLAGS`` only (jaxlib 0.10 ignores the schedule as a compile
option and refuses the threshold as one), so they are settings of the process:
:func:`use_cpu_loop_flags` adds them to ``XLA_FLAGS`` before JAX starts its backends. The
``snnjax`` command does so; a program that uses snnjax as a library may call it first thing.
They cost where one process runs many seeds of a wide network on several cores (Diehl & Cook
N = 400, 8 seeds in one 2-core process: 0.82–0.89×), where XLA splits the seed-batched kernels
over threads and the concurrent order overlaps them; one process per core
(``snnjax run --first-seed``, ``snnjax merge``) avoids that case.

A program may also ask for its reductions to be compiled inline rather than as library calls
(:func:`compiler_options` with ``library_reductions=False``; the conv network's training and
inference programs do): unlike the settings above, this can change how a float sum rounds.

None of the three settings above changes an operation on the values: the same programs give bit-for-bit the same
results with and without them (the golden-value tests pass under both). They are applied
only with the jaxlib versions they were measured on (an unknown ``XLA_FLAGS`` entry aborts
the process, so an untested jaxlib runs with XLA's defaults), and only where JAX has no
accelerator plugin installed (they are settings of the CPU backend).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import MutableMapping
from typing import Any

__all__ = ["CPU_LOOP_FLAGS", "INLINE_REDUCTIONS", "compiler_options", "use_cpu_loop_flags"]

#: Per-program compile options of every CPU program the core compiles.
CPU_COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_copy_insertion_use_region_analysis": True}

#: The compile option of a CPU program that keeps its reductions out of XLA's library kernels
#: (``compiler_options(..., library_reductions=False)``): of jaxlib 0.10's default library fusions
#: (YNNPACK single dot products and reductions) only the dot products remain.
INLINE_REDUCTIONS: dict[str, Any] = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}

#: The ``XLA_FLAGS`` entries of :func:`use_cpu_loop_flags`: the sequential kernel schedule, small loops as one function.
CPU_LOOP_FLAGS: tuple[str, ...] = (
    "--xla_cpu_enable_concurrency_optimized_scheduler=false",
    "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1099511627776",
)

#: jaxlib releases ``(major, minor)`` these settings were measured and tested with.
VERIFIED_JAXLIB: tuple[tuple[int, int], ...] = ((0, 10),)

#: Modules of JAX's accelerator plugins; with one installed the CPU settings are left alone.
ACCELERATOR_PLUGINS: tuple[str, ...] = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin",
                                        "jax_rocm7_plugin", "libtpu", "jax_plugins.xla_cuda12", "jax_plugins.xla_cuda13")


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


def _accelerator_plugin() -> str | None:
    for name in ACCELERATOR_PLUGINS:
        try:
            if importlib.util.find_spec(name) is not None:
                return name
        except (ImportError, ValueError):
            continue
    return None


def compiler_options(platform: str, *, library_reductions: bool = True) -> dict[str, Any]:
    """The compile options of a program for ``platform`` (``"cpu"``, ``"gpu"``, …): ``{}`` but on a verified CPU.

    ``library_reductions=False``: XLA compiles the program's reductions (sums, maxima) as its own
    loops instead of calling a library kernel for each (:data:`INLINE_REDUCTIONS`). A library call
    costs more than a small reduction inside a scan over images or time steps — the conv
    network's R-STDP decision epoch ran 1.4× faster without — but a float sum may then round
    otherwise (the Diehl & Cook column sums do), so a program keeps one setting for its stored
    results to stay put (``RunLoop.batched(..., library_reductions=...)``).
    """
    if platform != "cpu" or not _jaxlib_verified():
        return {}
    return {**CPU_COMPILER_OPTIONS, **({} if library_reductions else INLINE_REDUCTIONS)}


def use_cpu_loop_flags(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Add :data:`CPU_LOOP_FLAGS` to ``XLA_FLAGS`` (``environ``: ``os.environ`` by default).

    Call it before the first JAX computation of the process. Returns why a flag is not in
    effect (``[]``: all are): ``XLA_FLAGS`` already sets that option (the user's choice is
    kept), the installed jaxlib is not one the flags were verified with, an accelerator plugin
    is installed, or JAX's backends have started (they read ``XLA_FLAGS`` once).
    """
    env = os.environ if environ is None else environ
    flags = env.get("XLA_FLAGS", "")
    missing = [f for f in CPU_LOOP_FLAGS if f not in flags.split()]
    if not missing:
        return []
    if not _jaxlib_verified():
        return ["the installed jaxlib is not one the CPU loop flags were measured with"]
    plugin = _accelerator_plugin()
    if plugin is not None:
        return [f"an accelerator plugin ({plugin}) is installed; the CPU loop flags are left to the user"]
    if environ is None:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            return ["JAX's backends have started; call it before the first JAX computation"]
    why = []
    for flag in missing:
        name = flag.split("=", 1)[0]
        if name in flags:
            why.append(f"XLA_FLAGS already sets {name.lstrip('-')}")
        else:
            flags = (flags + " " + flag).strip()
    env["XLA_FLAGS"] = flags
    return why
