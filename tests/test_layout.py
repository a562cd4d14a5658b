"""The layout rules of the plugin tree, checked by parsing the sources (nothing is imported).

* No experiment imports another experiment: what two experiments share lives in a
  plugin module (e.g. :mod:`snnjax_plugins.readout`), so an experiment can be read,
  changed or removed alone.
* No experiment runs the loop mechanics itself: no module under ``plugins/experiments/``
  calls (or imports, or names) ``jax.jit``, ``jax.vmap``, ``jax.pmap``, the sharding helpers
  (``shard_seeds``, ``seed_mesh``), the checkpoint helpers (``resume_or``, ``save_chunk``,
  ``PhaseStore``) or ``ctx.progress``: the run loop of the core (``ctx.loop``,
  :mod:`snnjax.loop`) does, and vmaps over images are model code (``plugins/network/``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
EXPERIMENTS = PLUGINS / "experiments"
PACKAGE = "snnjax_plugins"


def module_name(path: Path) -> str:
    """Dotted module name of a file under ``plugins/`` (``plugins/x/y.py`` → ``snnjax_plugins.x.y``)."""
    parts = list(path.relative_to(PLUGINS).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Absolute names of every module ``path`` (or ``source`` read as if it were at ``path``) imports.

    ``from a import b`` counts both ``a`` and ``a.b`` (``b`` may be a submodule).
    """
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            out.add(stem)
            out.update(f"{stem}.{alias.name}" for alias in node.names)
    return out


def experiment_of(module: str) -> str | None:
    """The experiment a module belongs to (``snnjax_plugins.experiments.<experiment>[...]``), else ``None``."""
    prefix = f"{PACKAGE}.experiments."
    if not module.startswith(prefix):
        return None
    return module[len(prefix):].split(".")[0]


EXPERIMENT_FILES = sorted(p for p in EXPERIMENTS.rglob("*.py") if p != EXPERIMENTS / "__init__.py")


def test_the_experiments_are_found():
    names = {experiment_of(module_name(p)) for p in EXPERIMENT_FILES}
    assert {"supervised_stdp", "use_it_or_lose_it", "diehl_cook", "continual"} <= names


@pytest.mark.parametrize("path", EXPERIMENT_FILES, ids=lambda p: str(p.relative_to(PLUGINS)))
def test_no_experiment_imports_another(path):
    own = experiment_of(module_name(path))
    others = sorted(m for m in imported_modules(path) if experiment_of(m) not in (None, own))
    assert not others, f"{path.relative_to(PLUGINS)} imports other experiments: {others}"


def test_the_check_sees_a_relative_import_of_another_experiment():
    # the check itself must be able to fail: the import this layout removed is caught
    fake = EXPERIMENTS / "use_it_or_lose_it.py"
    found = imported_modules(fake, "from .supervised_stdp import predict\nfrom ..readout import segment_predict\n")
    assert f"{PACKAGE}.experiments.supervised_stdp" in found
    assert f"{PACKAGE}.readout" in found
    assert experiment_of(f"{PACKAGE}.experiments.supervised_stdp") != experiment_of(module_name(fake))


#: what the core's run loop owns (``snnjax.loop``): an experiment must not call, import or name these
LOOP_ATTRIBUTES = {"jax.jit", "jax.vmap", "jax.pmap", "ctx.progress"}
LOOP_NAMES = {"shard_seeds", "seed_mesh", "resume_or", "save_chunk", "PhaseStore"}
JAX_TRANSFORMS = {"jit", "vmap", "pmap"}


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for an attribute chain on a name, else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def loop_mechanics(source: str, filename: str = "<source>") -> list[str]:
    """``"line N: what"`` for every use of the run loop's mechanics in ``source`` (see the module docstring).

    Caught: ``jax.jit(…)``/``jax.vmap``/``jax.pmap`` and ``ctx.progress`` as attributes (called or not,
    also as the tail of a longer chain such as ``self.ctx.progress``); ``from jax import vmap`` and the
    names imported so; ``shard_seeds``, ``seed_mesh``, ``resume_or``, ``save_chunk``, ``PhaseStore`` as
    names, attributes (``checkpoint.save_chunk``) or imports.
    """
    tree = ast.parse(source, filename=filename)
    found: list[str] = []
    from_jax: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in LOOP_NAMES:
                    found.append(f"line {node.lineno}: imports {alias.name} from {node.module}")
                if node.module == "jax" and alias.name in JAX_TRANSFORMS:
                    found.append(f"line {node.lineno}: imports jax.{alias.name}")
                    from_jax.add(alias.asname or alias.name)
        elif isinstance(node, ast.Attribute):
            dotted = _dotted(node)
            if dotted is None:
                continue
            tail2 = ".".join(dotted.split(".")[-2:])
            if dotted in LOOP_ATTRIBUTES or tail2 == "ctx.progress" or node.attr in LOOP_NAMES:
                found.append(f"line {node.lineno}: {dotted}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and (node.id in LOOP_NAMES or node.id in from_jax):
            found.append(f"line {node.lineno}: {node.id}")
    return sorted(set(found), key=lambda f: int(f.split(":")[0].split()[1]))


@pytest.mark.parametrize("path", EXPERIMENT_FILES, ids=lambda p: str(p.relative_to(PLUGINS)))
def test_no_experiment_runs_the_loop_mechanics_itself(path):
    found = loop_mechanics(path.read_text(), str(path))
    assert not found, (f"{path.relative_to(PLUGINS)} runs loop mechanics the core's run loop owns "
                       f"(use ctx.loop: batched, fold/split, phase; vmaps over images belong in the model's "
                       f"package): {'; '.join(found)}")


@pytest.mark.parametrize("source, what", [
    ("v = jax.jit(jax.vmap(f))\n", "jax.jit"),
    ("g = jax.vmap\n", "jax.vmap"),
    ("out = jax.pmap(f)(x)\n", "jax.pmap"),
    ("from jax import vmap as vm\ny = vm(f)(x)\n", "vm"),
    ("from snnjax.seeds import seed_mesh, shard_seeds\n", "imports shard_seeds"),
    ("x = snnjax.seeds.shard_seeds(x, mesh)\n", "snnjax.seeds.shard_seeds"),
    ("start, s, p = resume_or(ctx, s)\n", "resume_or"),
    ("from snnjax import checkpoint\ncheckpoint.save_chunk(ctx, 1, s)\n", "checkpoint.save_chunk"),
    ("store = PhaseStore(ctx)\n", "PhaseStore"),
    ("ctx.progress(1, 2, 'rounds')\n", "ctx.progress"),
    ("self.ctx.progress(1, 2)\n", "self.ctx.progress"),
])
def test_the_loop_check_can_fail(source, what):
    found = loop_mechanics(source)
    assert any(what in f for f in found), found


def test_the_loop_check_passes_what_an_experiment_may_do():
    ok = ("k_a, k_b = ctx.loop.split(ctx.seed_keys(), 2)\nprog = ctx.loop.batched(f, shared=(1,))\n"
          "state = ctx.loop.phase('train', 3, body, state, unit='rounds')\nkeys = jax.random.split(key, 4)\n"
          "y = jax.nn.one_hot(x, 3)\nout = jax.lax.scan(body, c, xs)\n")
    assert loop_mechanics(ok) == []
