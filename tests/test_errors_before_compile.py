"""Bad input is refused before anything is compiled: no XLA compilation (nor tracing) happens on the way
to a config error, for every built-in experiment (counted with JAX's compile-event listeners)."""

from __future__ import annotations

import pytest

from snnjax.cli import main




@pytest.mark.parametrize("experiment, sets", [
    ("supervised-stdp", ["n_exc=31"]),
    ("supervised-stdp", ["classes=0,1,99"]),
    ("diehl-cook", ["assign_window=50", "n_train=10"]),
    ("diehl-cook", ["n_train=999999", "assign_window=10"]),  # found after the data are read, still before compiling
    ("use-it-or-lose-it", ["tau_prun_ms=-5"]),
    ("conv-mnist", ["radius1=-1"]),
    ("continual", ["method=freeze-smallest"]),
])
def test_a_bad_config_is_an_error_before_any_compile(experiment, sets, compiles, tmp_path, capsys):
    argv = ["run", experiment, "--quiet", "--out", str(tmp_path / "run")]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert compiles == [], f"{experiment}: {len(compiles)} compile/trace event(s) before the error"
    assert not (tmp_path / "run" / "results.json").exists()
