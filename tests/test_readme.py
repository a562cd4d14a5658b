"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own documentation
    counts = namespace["counts"]
    assert counts.shape == (8, 30)
    assert int(counts.sum()) > 0


def test_optax_readout_example_runs():
    """examples/stdp_features_optax_readout.py: STDP features + optax readout, tiny sizes."""
    import importlib.util

    path = README.parent / "examples" / "stdp_features_optax_readout.py"
    spec = importlib.util.spec_from_file_location("optax_readout_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    acc = module.main(n_train=30, n_test=30, n_seeds=2, dt_ms=0.5)
    assert set(acc) == {"segment_rule", "optax_readout"}
    assert acc["optax_readout"].shape == (2,)
    assert acc["optax_readout"].mean() > 50.0  # chance is 33 %
