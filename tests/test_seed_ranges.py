"""A many-seed run split over processes (``--first-seed``) and joined again (``snnjax merge``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from snnjax.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:.*did not fit the padded event lists")

TINY = ["--quiet", "--set", "n_rounds=1", "--set", "images_per_round=3", "--set", "n_test=4", "--set", "dt_ms=0.5"]


def _results(path):
    return json.loads((path / "results.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("seed-ranges")
    argv = {"both": ["--seeds", "2"], "first": ["--seeds", "1"], "second": ["--seeds", "1", "--first-seed", "1"]}
    for name, seeds in argv.items():
        assert main(["run", "supervised-stdp", "--out", str(root / name), *seeds, *TINY]) == 0
    return root


def test_a_seed_range_reproduces_those_seeds_of_the_whole_run(runs):
    both, second = _results(runs / "both"), _results(runs / "second")
    assert second["first_seed"] == 1 and second["seeds"] == 1
    assert second["extra"]["classes_per_seed"] == both["extra"]["classes_per_seed"][1:]
    for name, m in both["metrics"].items():
        np.testing.assert_array_equal(np.asarray(second["metrics"][name]["per_seed"], float),
                                      np.asarray(m["per_seed"], float)[1:], err_msg=name)


def test_merged_parts_equal_the_whole_run(runs, capsys):
    out = runs / "merged"
    assert main(["merge", str(out), str(runs / "second"), str(runs / "first")]) == 0
    merged, both = _results(out), _results(runs / "both")
    assert merged["seeds"] == 2 and merged["seed_ids"] == [0, 1]
    assert [p["seed_ids"] for p in merged["merged_from"]] == [[0], [1]]
    for name, m in both["metrics"].items():
        for field in ("per_seed", "mean", "std"):
            np.testing.assert_allclose(np.asarray(merged["metrics"][name][field], float),
                                       np.asarray(m[field], float), err_msg=f"{name} {field}")
    assert (out / "learning_curves.png").is_file()
    assert "2 seeds from 2 runs" in capsys.readouterr().out


@pytest.mark.parametrize(
    "parts, message",
    [
        (["both", "second"], "seed 1 is in both"),
        (["first"], "at least two run directories"),
        (["first", "nowhere"], "does not exist"),
    ],
)
def test_merge_refuses_what_cannot_be_one_run(runs, parts, message, capsys):
    assert main(["merge", str(runs / f"bad-{parts[0]}"), *[str(runs / p) for p in parts]]) == 2
    assert message in capsys.readouterr().err


def test_merge_refuses_other_configs_and_resume_keeps_the_first_seed(runs, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["run", "supervised-stdp", "--out", str(other), "--seeds", "1", "--first-seed", "1", *TINY,
                 "--set", "tie_rule=thesis"]) == 0
    assert main(["merge", str(tmp_path / "m"), str(runs / "first"), str(other)]) == 2
    assert "differ in config keys ['tie_rule']" in capsys.readouterr().err
    assert main(["run", "--resume", str(other), "--first-seed", "0"]) == 2
    assert "starts at seed 1, not --first-seed 0" in capsys.readouterr().err
    assert main(["run", "supervised-stdp", "--first-seed", "-1", "--dry-run"]) == 2
    assert "--first-seed must be >= 0" in capsys.readouterr().err
