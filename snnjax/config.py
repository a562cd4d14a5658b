"""Run configuration: defaults ← TOML file ← ``--set key=value``, validated.

A config is a flat ``dict`` of ``key -> value`` whose keys are exactly the
experiment's defaults. Values keep the type of their default: ``--set
n_train=100`` gives an ``int``, ``--set classes=3,8,6`` (or ``[3, 8, 6]``) a
list. Unknown keys get a :class:`~snnjax.errors.ConfigError` with a "did you
mean".
"""

from __future__ import annotations

import ast
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


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file (flat keys; an ``[experiment]`` table is flattened)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def resolve(defaults: Mapping[str, Any], *layers: tuple[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Merge ``layers`` (each ``(where, mapping)``) over ``defaults``, checking keys and types."""
    config = dict(defaults)
    for where, layer in layers:
        for key, value in layer.items():
            if key not in defaults:
                raise _unknown(key, defaults, where)
            config[key] = _coerce(key, value, defaults[key])
    return config
