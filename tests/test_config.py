"""Config resolution: types, unknown keys, TOML files."""

from __future__ import annotations

import pytest

from snnjax.config import load_toml, parse_set, resolve
from snnjax.errors import ConfigError

DEFAULTS = {"n_train": 100, "rate": 0.5, "adaptive": True, "rule": "stdp", "classes": [3, 8, 6]}


def test_set_values_take_the_type_of_their_default():
    cfg = resolve(DEFAULTS, ("--set", parse_set(["n_train=7", "rate=2", "adaptive=false", "rule=all-ltd", "classes=1,2"])))
    assert cfg == {"n_train": 7, "rate": 2.0, "adaptive": False, "rule": "all-ltd", "classes": [1, 2]}
    assert isinstance(cfg["rate"], float)


def test_list_in_brackets():
    assert resolve(DEFAULTS, ("--set", parse_set(["classes=[0, 1, 2]"])))["classes"] == [0, 1, 2]


def test_unknown_key_suggests():
    with pytest.raises(ConfigError, match="unknown config key 'n_trian'.*Did you mean 'n_train'"):
        resolve(DEFAULTS, ("--set", parse_set(["n_trian=3"])))


@pytest.mark.parametrize("item", ["n_train=abc", "n_train=1.5", "adaptive=maybe", "rate=fast"])
def test_wrong_type_is_an_error(item):
    with pytest.raises(ConfigError, match="must be"):
        resolve(DEFAULTS, ("--set", parse_set([item])))


def test_set_without_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["n_train"])


def test_toml_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('n_train = 5\n[experiment]\nrule = "all-ltd"\n')
    cfg = resolve(DEFAULTS, ("file", load_toml(path)))
    assert cfg["n_train"] == 5 and cfg["rule"] == "all-ltd"


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("n_train = = 5")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")
