"""``snnjax plot`` and ``snnjax report`` on hand-made run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from snnjax.cli import main
from snnjax.report import ResultsError, format_metric, load_results, plot_run, report


def _metric(per_seed, x=None, thesis=None):
    arr = np.asarray(per_seed, dtype=float)
    m = {"mean": np.mean(arr, axis=0).tolist(), "std": np.std(arr, axis=0).tolist(), "per_seed": arr.tolist()}
    if x is not None:
        m["x"] = list(x)
    if thesis:
        m["thesis"] = thesis
    return m


def _run(path: Path, metrics: dict, *, experiment="supervised-stdp", seeds=3, complete=True) -> Path:
    path.mkdir(parents=True)
    doc = {"experiment": experiment, "seeds": seeds, "config": {"seed": 0}, "metrics": metrics, "extra": {},
           "figures": [], "versions": {}, "wall_time_s": 1.0, "complete": complete, "date": "2025-01-01T00:00:00+00:00"}
    (path / "results.json").write_text(json.dumps(doc))
    return path


@pytest.fixture
def run_a(tmp_path):
    rng = np.random.default_rng(0)
    return _run(tmp_path / "a", {
        "accuracy": _metric(rng.uniform(60, 90, (3, 4)), x=[100, 200, 300, 400], thesis="80.0 ± 13.0"),
        "final_accuracy": _metric([80.0, 82.0, 78.0], thesis="74.9 ± 19.8"),
        "responses_noise": _metric([3000.0, 3300.0, 3100.0], thesis="3162 → 1"),
        "responses_digits": _metric([400.0, 420.0, 410.0]),
        "responses_by_stimulus": _metric(rng.uniform(0, 5, (3, 4)), x=["noise", "blur", "known", "unknown"]),
    })


def test_format_metric():
    assert format_metric(_metric([1.0, 3.0])) == "2 ± 1 (2 seeds)"
    assert format_metric(_metric([[1.0, 2.0], [3.0, 4.0]])) == "3 ± 1 (2 seeds; final of 2 points)"
    assert format_metric({"mean": None, "std": None, "per_seed": [None]}) == "nan ± nan (1 seed)"
    assert format_metric({"mean": 31620.4, "std": 1.5}, n_seeds=4) == "31620 ± 1.5 (4 seeds)"


def test_report_compares_runs_with_thesis_column(run_a, tmp_path):
    run_b = _run(tmp_path / "b", {"final_accuracy": _metric([70.0, 72.0])}, seeds=2, complete=False)
    text = report([run_a, run_b])
    lines = text.splitlines()
    assert lines[0] == "| metric | a | b | thesis |"
    assert lines[1].startswith("| --- |")
    row = next(line for line in lines if line.startswith("| final_accuracy "))
    assert row == "| final_accuracy | 80 ± 1.633 (3 seeds) | 71 ± 1 (2 seeds) | 74.9 ± 19.8 |"
    acc = next(line for line in lines if line.startswith("| accuracy "))
    assert "(3 seeds; final of 4 points)" in acc and "| — |" in acc and acc.endswith("| 80.0 ± 13.0 |")
    assert "| complete | yes | no (interrupted) |" in text
    assert "| experiment | supervised-stdp | supervised-stdp |" in text


def test_report_without_thesis_has_no_thesis_column(tmp_path):
    run = _run(tmp_path / "r", {"x": _metric([1.0, 1.0])})
    assert report([run]).splitlines()[0] == "| metric | r |"


def test_report_cli_writes_markdown(run_a, tmp_path, capsys):
    out = tmp_path / "docs" / "cmp.md"
    assert main(["report", str(run_a), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text().startswith("| metric | a | thesis |")
    assert main(["report", str(run_a)]) == 0
    assert "| responses_noise | 3133 ± 124.7 (3 seeds) | 3162 → 1 |" in capsys.readouterr().out


def test_missing_and_corrupt_results_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ResultsError, match="does not exist"):
        load_results(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="no results.json.*not.*output directory|no results.json.*snnjax run"):
        load_results(tmp_path / "empty")
    started = tmp_path / "started"
    started.mkdir()
    (started / "config.json").write_text("{}")
    with pytest.raises(ResultsError, match="--resume"):
        load_results(started)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text('{"experiment": "x", "metrics": {')
    with pytest.raises(ResultsError, match="not valid JSON"):
        load_results(bad)
    (bad / "results.json").write_text('{"experiment": "x"}')
    with pytest.raises(ResultsError, match="not a snnjax results file"):
        load_results(bad)
    assert main(["report", str(bad)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["plot", str(tmp_path / "empty")]) == 2
    assert "error: no results.json" in capsys.readouterr().err


def test_plot_draws_curves_bars_fields_and_raster(run_a, tmp_path, capsys):
    rng = np.random.default_rng(1)
    np.savez(run_a / "weights.npz", W=rng.uniform(size=(3, 784, 12)), W_other=rng.uniform(size=(16, 4)),
             b=np.zeros(3))
    np.savez(run_a / "raster.npz", spikes=rng.uniform(size=(3, 50, 20)) < 0.1, dt_ms=np.float64(0.5))
    assert main(["plot", str(run_a)]) == 0
    printed = capsys.readouterr().out.split()
    names = sorted(Path(p).name for p in printed)
    assert names == ["learning_curves.png", "raster.png", "receptive_fields.png", "receptive_fields_4x4.png",
                     "responses.png", "responses_groups.png"]
    for p in printed:
        assert Path(p).stat().st_size > 1000
        assert Path(p).read_bytes()[:4] == b"\x89PNG"


def test_plot_into_other_dir_and_event_raster(tmp_path):
    run = _run(tmp_path / "r", {"acc_a": _metric(np.ones((2, 3)), x=[1, 2, 3]),
                                "acc_b": _metric(np.ones((2, 5)), x=[1, 2, 3, 4, 5])})
    np.savez(run / "raster.npz", t=np.array([1.0, 2.0, 5.0]), i=np.array([0, 3, 1]))
    paths = plot_run(run, out_dir=tmp_path / "figs")
    assert sorted(p.name for p in paths) == ["learning_curves_acc_a.png", "learning_curves_acc_b.png", "raster.png"]
    assert all(p.parent == tmp_path / "figs" for p in paths)


def test_plot_file_names_stay_plain_for_metric_names_with_slashes_and_spaces(tmp_path):
    run = _run(tmp_path / "r", {"baseline_acc": _metric(np.ones((2, 3))),
                                "langevin-ranges 0.25/0.75:langevin_acc": _metric(np.ones((2, 5)))})
    names = sorted(p.name for p in plot_run(run))
    assert names == ["learning_curves_baseline_acc.png", "learning_curves_langevin-ranges_0.25_0.75_langevin_acc.png"]
    assert all((run / n).is_file() for n in names)


def test_plot_with_nothing_to_draw(tmp_path, capsys):
    run = _run(tmp_path / "r", {"x": _metric([1.0, 2.0])})
    assert main(["plot", str(run)]) == 0
    assert "nothing to plot" in capsys.readouterr().err


def test_plot_damaged_npz_is_a_clear_error(run_a):
    (run_a / "weights.npz").write_bytes(b"garbage")
    with pytest.raises(ResultsError, match="weights.npz.*cannot be read"):
        plot_run(run_a)


def test_a_one_point_curve_is_drawn_as_a_marker_with_its_spread():
    """A learning curve of one point (e.g. ``n_rounds=1``) has no line: it must still show up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snnjax.plots import _bands

    fig, ax = plt.subplots()
    _bands(ax, np.asarray([100.0]), {"a": np.asarray([[70.0], [80.0]])})
    (line,) = ax.get_lines()[:1]
    assert line.get_marker() == "o"
    assert len(ax.containers) == 1  # the ± std error bar
    (bars,) = ax.containers[0].lines[2]
    (segment,) = bars.get_segments()
    np.testing.assert_allclose(segment[:, 1], [70.0, 80.0])
    plt.close(fig)
