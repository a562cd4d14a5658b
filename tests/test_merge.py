"""``merge_results``: every refusal, and what the merged document keeps (per-seed values, shared ``extra``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from snnjax.results import MergeError, merge_results


def _part(first_seed: int, values: list[list[float]], *, extra=None, x=(1, 2), complete=True) -> dict:
    n = len(values)
    return {
        "experiment": "toy", "seeds": n, "first_seed": first_seed, "config": {"a": 1},
        "metrics": {"acc": {"per_seed": values, "x": list(x)},
                    "final": {"per_seed": [v[-1] for v in values]}},
        "extra": {"same": [1, 2], "differs": first_seed, "only_here": True} if extra is None else extra,
        "versions": {"snnjax": "1", "jax": "0.1", "jaxlib": "0.1", "numpy": "2", "backend": "cpu"},
        "wall_time_s": 2.0, "complete": complete,
    }


def test_merge_joins_seeds_in_order_and_keeps_only_the_extra_all_parts_share():
    a = _part(0, [[10.0, 20.0], [30.0, 40.0]])
    b = _part(2, [[50.0, 60.0]], extra={"same": [1, 2], "differs": 99})
    doc = merge_results([b, a], ["b", "a"])  # given out of order: joined in seed order
    assert doc["seed_ids"] == [0, 1, 2] and doc["seeds"] == 3 and doc["first_seed"] == 0
    np.testing.assert_array_equal(doc["metrics"]["acc"]["per_seed"], [[10, 20], [30, 40], [50, 60]])
    assert doc["metrics"]["acc"]["x"] == [1, 2]
    np.testing.assert_allclose(doc["metrics"]["final"]["mean"], np.mean([20, 40, 60]))
    # extra: the entry with equal values in every part, nothing else
    assert doc["extra"] == {"same": [1, 2]}
    assert [p["extra"] for p in doc["merged_from"]] == [a["extra"], b["extra"]]
    assert [p["run"] for p in doc["merged_from"]] == ["a", "b"]
    assert doc["wall_time_s"] == 4.0 and doc["complete"] is True


def _refused(docs, match):
    with pytest.raises(MergeError, match=match):
        merge_results(docs, [f"p{i}" for i in range(len(docs))])


def test_merge_refuses_an_interrupted_part():
    _refused([_part(0, [[1.0, 2.0]]), _part(1, [[3.0, 4.0]], complete=False)], "interrupted")


def test_merge_refuses_other_x_values():
    _refused([_part(0, [[1.0, 2.0]]), _part(1, [[3.0, 4.0]], x=(1, 3))], "other x values")


def test_merge_refuses_overlapping_seeds_other_experiments_configs_metrics_and_versions():
    a = _part(0, [[1.0, 2.0], [3.0, 4.0]])
    _refused([a, _part(1, [[5.0, 6.0]])], "seed 1 is in both")
    _refused([a], "at least two")
    other = _part(2, [[5.0, 6.0]])
    other["experiment"] = "other"
    _refused([a, other], "only runs of one experiment")
    other = _part(2, [[5.0, 6.0]])
    other["config"] = {"a": 2}
    _refused([a, other], r"config keys \['a'\]")
    other = _part(2, [[5.0, 6.0]])
    other["metrics"]["new"] = {"per_seed": [1.0]}
    _refused([a, other], "different metrics")
    other = _part(2, [[5.0, 6.0]])
    other["versions"]["jax"] = "9.9"
    _refused([a, other], "different versions")
    assert merge_results([a, other], ["a", "b"], allow_mixed=True)["versions"]["jax"] == "mixed"


def test_merge_refuses_a_part_whose_rows_disagree_with_its_seeds():
    bad = _part(2, [[5.0, 6.0]])
    bad["seeds"] = 2
    _refused([_part(0, [[1.0, 2.0]]), bad], "damaged")
    bad = copy.deepcopy(_part(2, [[5.0, 6.0]]))
    bad["metrics"]["final"]["per_seed"] = [1.0, 2.0]
    _refused([_part(0, [[1.0, 2.0]]), bad], "per-seed rows")
