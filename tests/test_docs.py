"""The documentation site builds without a warning, and its runnable examples run."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _missing_doc_tools() -> list[str]:
    return [name for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
            if importlib.util.find_spec(name.split(".")[0]) is None
            or (name == "mkdocstrings_handlers.python" and importlib.util.find_spec(name) is None)]


def test_mkdocs_build_strict(tmp_path):
    missing = _missing_doc_tools()
    if missing:
        pytest.skip(f"docs tools not installed ({', '.join(missing)}): pip install -e '.[docs]'")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    log = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines() if "WARNING" in line or "ERROR" in line)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log or proc.stderr[-3000:]}"
    assert (tmp_path / "site" / "api" / "index.html").is_file()
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for anchor in ("snnjax.plasticity.LearningRule", "snnjax.seeds.run_seeds", "snnjax.experiment.Experiment",
                   "snnjax.errors.CheckpointError", "snnjax.hookspecs.snnjax_learning_rules"):
        assert f'id="{anchor}"' in api, anchor


def test_api_page_names_importable_modules():
    modules = re.findall(r"^::: ([\w.]+)", (DOCS / "api.md").read_text(), flags=re.M)
    assert modules, "docs/api.md lists no module"
    for name in modules:
        importlib.import_module(name)


def test_concepts_example_runs():
    text = (DOCS / "concepts.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    runnable = [b for b in blocks if "run_seeds(present" in b]
    assert len(runnable) == 1
    namespace: dict = {}
    exec(compile(runnable[0], "docs/concepts.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["w"].shape == (8, 784, 10)
    assert namespace["counts"].shape == (8, 10)
