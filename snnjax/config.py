"""Run configuration: defaults ← TOML file ← ``--set key=value``, validated.

A config is a flat ``dict`` of ``key -> value`` whose keys are exactly the
experiment's defaults. Values keep the type of their default: ``--set
n_train=100`` gives an ``int``, ``--set classes=3,8,6`` (or ``[3, 8, 6]``) a
list. Unknown keys get a :class:`~snnjax.errors.ConfigError` with a "did you
mean".
"""

from __future__ import annotations

import ast
import math
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError, did_you_mean


def _unknown(key: str, known: Iterable[str], where: str) -> ConfigError:
    known = sorted(known)
    return ConfigError(
        f"unknown config key {key!r} ({where}).{did_you_mean(key, known)} Valid keys: {', '.join(known)}"
    )


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Convert ``value`` (str from the CLI, or a TOML value) to the type of ``default``."""
    if isinstance(value, str) and not isinstance(default, str):
        value = _parse_literal(key, value, default)
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            value = [value]
        if default:
            return [_coerce(key, v, default[0]) for v in value]
        return list(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return value
    return value


def _parse_literal(key: str, text: str, default: Any) -> Any:
    text = text.strip()
    low = text.lower()
    if isinstance(default, bool):
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"config key {key!r} must be true or false, got {text!r}")
    if isinstance(default, (list, tuple)) and not text.startswith("["):
        parts = [p for p in text.split(",") if p.strip()]
        elem = default[0] if default else ""
        return [_parse_literal(key, p, elem) if not isinstance(elem, str) else p.strip() for p in parts]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if low in ("true", "false"):
            return low == "true"
        return text


def parse_set(items: Iterable[str]) -> dict[str, str]:
    """Parse ``["key=value", ...]`` from ``--set``."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key] = value
    return out


#: The one TOML table whose keys are read as top-level config keys.
TOML_TABLE = "experiment"


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file (flat keys; an ``[experiment]`` table is flattened).

    A key given both at the top level and in ``[experiment]`` is an error;
    any other table (or inline table) is a value, refused by :func:`resolve`
    unless its key takes one.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a directory; give a .toml file")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc
    flat = {k: v for k, v in data.items() if k != TOML_TABLE}
    table = data.get(TOML_TABLE, {})
    if not isinstance(table, dict):
        flat[TOML_TABLE] = table
        table = {}
    both = sorted(set(flat) & set(table))
    if both:
        raise ConfigError(f"config file {str(path)!r} sets {', '.join(map(repr, both))} both at the top level and "
                          f"in [{TOML_TABLE}]; keep one")
    flat.update(table)
    return flat


#: Seeds (``config["seed"]``) and seed indices must fit the 32 bits of a JAX key.
SEED_LIMIT = 2**32


def check_values(config: Mapping[str, Any], where: str | None = None) -> None:
    """Checks every experiment's config gets, whatever its own ``validate`` does.

    Every number must be finite (no NaN or ±inf, also inside lists), and
    ``seed`` must lie in ``0 … 2**32 − 1`` (``jax.random.PRNGKey`` silently
    wraps larger seeds onto small ones; NumPy refuses negative ones).
    """
    at = f" (in {where})" if where else ""
    for key, value in config.items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"config key {key!r} must be a finite number, got {v!r}{at}")
    seed = config.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"config key 'seed' must be an integer in 0…{SEED_LIMIT - 1} (the seed of a 32-bit PRNG "
                          f"key), got {seed}{at}")


def check_seed_range(n_seeds: Any, first_seed: Any) -> None:
    """``--seeds`` positive, ``--first-seed`` ≥ 0, and every seed index below 2**32 (one JAX ``fold_in``)."""
    if not isinstance(n_seeds, int) or isinstance(n_seeds, bool) or n_seeds < 1:
        raise ConfigError(f"--seeds must be a positive integer, got {n_seeds!r}")
    if not isinstance(first_seed, int) or isinstance(first_seed, bool) or first_seed < 0:
        raise ConfigError(f"--first-seed must be >= 0, got {first_seed!r}")
    if first_seed + n_seeds > SEED_LIMIT:
        raise ConfigError(f"--first-seed {first_seed} with --seeds {n_seeds} reaches seed index "
                          f"{first_seed + n_seeds - 1}; seed indices must stay below 2**32 = {SEED_LIMIT} (they are "
                          f"folded into 32-bit JAX keys)")


def resolve(defaults: Mapping[str, Any], *layers: tuple[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Merge ``layers`` (each ``(where, mapping)``) over ``defaults``, checking keys and types."""
    config = dict(defaults)
    for where, layer in layers:
        for key, value in layer.items():
            if key not in defaults:
                raise _unknown(key, defaults, where)
            config[key] = _coerce(key, value, defaults[key])
    return config
