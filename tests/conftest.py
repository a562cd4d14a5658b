"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.monitoring
import pytest

from snnjax.xla_options import use_cpu_loop_flags

# the CPU loop settings the `snnjax` command runs with (before any test starts JAX's backends)
use_cpu_loop_flags()

# Compiled programs shared by all tests, the xdist workers and the processes tests start: the many tiny
# runs of the suite compile the same programs (the same experiment at the same shapes) again and again,
# and JAX's persistent cache turns a repeated compile into a disk read. Every program is cached, however
# fast it compiled. The key is the program, the compile options, XLA_FLAGS and jaxlib, so an entry is
# only ever reused for the same program; `.pytest_cache/` is git-ignored (entries of programs that no
# longer exist stay until it is removed). JAX_COMPILATION_CACHE_DIR etc. in the environment take precedence.
CACHE_SETTINGS = {
    "JAX_COMPILATION_CACHE_DIR": str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "xla"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
}
for _name, _value in CACHE_SETTINGS.items():
    os.environ.setdefault(_name, _value)  # for the processes tests start
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
jax.config.update("jax_persistent_cache_min_entry_size_bytes", int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))

#: The reference-simulator outputs (Brian 2, SpykeTorch) the tests reproduce; see ``tests/fixtures/README.md``.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


#: The JAX monitoring events of a compile or a trace.
COMPILE_EVENTS = ("/jax/core/compile/backend_compile_duration", "/jax/core/compile/jaxpr_trace_duration")


@pytest.fixture
def compiles():
    """The names of the compile/trace events JAX reports while the test runs (``[]``: nothing compiled)."""
    seen: list[str] = []

    def listener(name, duration, **kw):
        if name in COMPILE_EVENTS:
            seen.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def fixture_path(*parts: str) -> Path:
    """Path of a reference fixture under ``tests/fixtures``; a missing fixture fails the test (never a skip)."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"reference fixture {path} is missing (it is part of the repository: tests/fixtures/README.md)",
                    pytrace=False)
    return path


class TinyRuns:
    """The pinned tiny run of each built-in experiment (``tests/test_golden.py``), made at most once per
    session and shared by every test that only reads its results (``doc(name)``, ``out(name)``)."""

    def __init__(self, root: Path):
        self.root = root
        self._docs: dict[str, dict] = {}

    def out(self, name: str) -> Path:
        self.doc(name)
        return self.root / name

    def doc(self, name: str) -> dict:
        if name not in self._docs:
            from tests.test_golden import run_tiny

            self._docs[name] = run_tiny(name, self.root / name)
        return self._docs[name]

    __call__ = doc


@pytest.fixture(scope="session")
def golden_runs(tmp_path_factory) -> TinyRuns:
    return TinyRuns(tmp_path_factory.mktemp("tiny-runs"))


#: The files whose tests take longest (CPU seconds as ``python -m pytest --durations=60`` shows them), longest
#: first. ``--dist loadfile`` gives a worker one whole file at a time in collection order (addopts
#: ``--no-loadscope-reorder``): these go first, so the many short files fill the gaps at the end and the two
#: workers finish together instead of one running a long file alone.
LONGEST_FIRST = ("test_continual.py", "test_golden.py", "test_plugin_choice.py", "test_use_it_or_lose_it.py",
                 "test_benchmarks.py", "test_fast_path.py", "test_example_package.py", "test_network.py",
                 "test_conv_events.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order
