"""The layout rules of the plugin tree, checked by parsing the sources (nothing is imported).

* No experiment imports another experiment: what two experiments share lives in a
  plugin module (e.g. :mod:`snnjax_plugins.readout`), so an experiment can be read,
  changed or removed alone.
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
