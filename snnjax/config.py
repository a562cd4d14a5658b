"""Run configuration: defaults ← TOML file ← ``--set key=value``, validated.

A config is a flat ``dict`` of ``key -> value`` whose keys are exactly the
experiment's defaults. Values keep the type of their default: ``--set
n_train=100`` gives an ``int``, ``--set classes=3,8,6`` (or ``[3, 8, 6]``) a
list. Unknown keys get a :class:`~snnjax.errors.ConfigError` with a "did you
mean".

A key whose default is a :func:`plugin_key` chooses a plugin by name, with
parameters: ``rule = "stdp"``, a table ``[rule] name = "segment-oja", eta_pre =
1e-4`` or dotted ``--set rule.eta_pre=1e-4`` (the same merge); a
:func:`plugin_list` key holds a chain (``[[regularizers]]``; ``--set
regularizers=a,b``; ``--set regularizers.0.k_p=1``). Given the run's registry,
:func:`resolve` checks every choice (:func:`snnjax.plugins.check_choice`).
"""

from __future__ import annotations

import ast
import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
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


class PluginKey(str):
    """A default naming one plugin of ``kind``: the key takes a name or a table ``{name, param = value}``.

    It is a ``str`` (the default plugin's name), so a config built from the defaults is
    unchanged; :func:`resolve` reads a table (TOML ``[rule]``) or dotted ``--set rule.eta_pre=1e-4``
    as a plugin choice and :func:`snnjax.plugins.check_choice` checks it against the run's registry.
    """

    kind: str
    check: Callable[[Any], None] | None

    def __new__(cls, kind: str, name: str, check: Callable[[Any], None] | None = None) -> "PluginKey":
        obj = super().__new__(cls, name)
        obj.kind = kind
        obj.check = check
        return obj


class PluginList(list):
    """A default holding a chain of plugins of ``kind`` (TOML ``[[regularizers]]``, an array of tables).

    ``builtins``: names the experiment itself understands (``continual``'s ``method``: ``baseline``,
    ``freeze-largest``, ...); given as plain names they are kept as they are, not looked up in the
    registry. Every other entry is a plugin choice of ``kind``.
    """

    kind: str
    builtins: tuple[str, ...]

    def __init__(self, kind: str, items: Iterable[Any] = (), builtins: Iterable[str] = ()):
        super().__init__(items)
        self.kind = kind
        self.builtins = tuple(builtins)


def plugin_key(kind: str, name: str, check: Callable[[Any], None] | None = None) -> PluginKey:
    """The default of a config key that chooses one plugin of ``kind`` by name (with parameters).

    ``check(plugin)``: what the experiment needs of the plugin it is given (raising
    :class:`~snnjax.errors.ConfigError`); :func:`resolve` builds the chosen plugin and calls it,
    so a plugin that exists but cannot serve here (a current-based neuron model in a
    conductance network) is refused while the config is checked, under ``--dry-run`` too.
    """
    return PluginKey(kind, name, check)


def plugin_list(kind: str, default: Iterable[Any] = (), builtins: Iterable[str] = ()) -> PluginList:
    """The default of a config key that chooses a list of plugins of ``kind`` (empty unless ``default``).

    Plain names in ``builtins`` are the experiment's own and skip the registry (see :class:`PluginList`).
    """
    return PluginList(kind, default, builtins)


def _as_choice(key: str, value: Any, where: str) -> Any:
    """A plugin choice in canonical form: ``"name"`` or ``{"name": ..., param: value, ...}``."""
    if isinstance(value, str):
        return str(value).strip()
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"config key {key!r} ({where}): parameter names must be strings, got {bad[0]!r}")
        return dict(value)
    raise ConfigError(f"config key {key!r} ({where}) takes a plugin name or a table {{name = \"...\", "
                      f"parameter = value, ...}}, got {value!r}")


def _merge_choice(key: str, current: Any, path: list[str], value: Any, where: str) -> Any:
    """``current`` with ``value`` set at ``path`` (``[]``: replaced; ``["eta_pre"]``: one parameter)."""
    if not path:
        if isinstance(value, Mapping):  # a table merges into the current choice (as dotted keys do)
            base = {"name": current} if isinstance(current, str) else dict(current)
            base.update(_as_choice(key, value, where))
            return base
        if isinstance(value, str) and value.strip().startswith("{"):
            return _merge_choice(key, current, path, _parse_literal(key, value, {}), where)
        return _as_choice(key, value, where)
    if len(path) > 1:
        raise ConfigError(f"config key {key + '.' + '.'.join(path)!r} ({where}) is nested too deep: a plugin "
                          f"parameter is {key}.PARAMETER")
    base = {"name": current} if isinstance(current, str) else dict(current)
    base[path[0]] = value.strip() if path[0] == "name" and isinstance(value, str) else value
    return base


def _merge_list(key: str, current: list[Any], path: list[str], value: Any, where: str) -> list[Any]:
    if not path:
        if isinstance(value, str):
            value = _parse_literal(key, value, []) if value.strip().startswith("[") else \
                [p.strip() for p in value.split(",") if p.strip()]
        if isinstance(value, Mapping):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} ({where}) takes a list of plugins (TOML [[{key}]] tables, or "
                              f"--set {key}=name1,name2), got {value!r}")
        return [_as_choice(key, v, where) for v in value]
    index, rest = path[0], path[1:]
    if not index.isdigit() or int(index) > len(current):
        raise ConfigError(f"config key {key + '.' + '.'.join(path)!r} ({where}): {key}.N.PARAMETER needs an index "
                          f"N in 0…{len(current)} ({key} holds {len(current)} plugin(s))")
    out = list(current)
    if int(index) == len(current):
        out.append({})
    out[int(index)] = _merge_choice(f"{key}.{index}", out[int(index)], rest, value, where)
    return out


def resolve(defaults: Mapping[str, Any], *layers: tuple[str, Mapping[str, Any]],
            registry: Any = None) -> dict[str, Any]:
    """Merge ``layers`` (each ``(where, mapping)``) over ``defaults``, checking keys and types.

    Plugin-choice keys (defaults made by :func:`plugin_key` / :func:`plugin_list`) take a name,
    a table ``{name = ..., param = value}`` or dotted keys ``rule.eta_pre`` / ``regularizers.0.k_p``;
    with ``registry`` each choice is then checked against it (name, parameter names and types,
    see :func:`snnjax.plugins.check_choice`) and its parameters take the types of the factory's
    defaults.
    """
    config = {k: (list(v) if isinstance(v, PluginList) else str(v) if isinstance(v, PluginKey) else v)
              for k, v in defaults.items()}
    for where, layer in layers:
        for key, value in layer.items():
            base, _, rest = key.partition(".")
            default = defaults.get(base)
            if isinstance(default, PluginKey):
                config[base] = _merge_choice(base, config[base], rest.split(".") if rest else [], value, where)
            elif isinstance(default, PluginList):
                config[base] = _merge_list(base, config[base], rest.split(".") if rest else [], value, where)
            elif key not in defaults:
                raise _unknown(key, defaults, where)
            else:
                config[key] = _coerce(key, value, defaults[key])
    if registry is not None:
        from .plugins import check_choice

        for key, default in defaults.items():
            if isinstance(default, PluginKey):
                config[key] = check_choice(registry, default.kind, config[key], key, default.check)
            elif isinstance(default, PluginList):
                config[key] = [v if isinstance(v, str) and v in default.builtins
                               else _builtin_or_choice(registry, default, f"{key}.{i}", key, v)
                               for i, v in enumerate(config[key])]
    return config


def _builtin_or_choice(registry: Any, default: PluginList, where: str, key: str, choice: Any) -> Any:
    """A list entry: a built-in name as it is, else a plugin choice checked against ``registry``."""
    from .plugins import check_choice

    known = _known(registry, default, key, choice)
    return known if isinstance(known, str) and known in default.builtins else check_choice(
        registry, default.kind, known, where)


def _known(registry: Any, default: PluginList, key: str, choice: Any) -> Any:
    """``choice`` unchanged; for a list with built-in names, a one-line error naming both kinds of
    entry when ``choice`` is neither a built-in nor a registered plugin."""
    name = choice if isinstance(choice, str) else choice.get("name") if isinstance(choice, Mapping) else None
    if default.builtins and isinstance(name, str) and name not in registry.names(default.kind):
        if name in default.builtins and isinstance(choice, Mapping) and set(choice) == {"name"}:
            return name
        if name in default.builtins:
            raise ConfigError(f"config key {key!r}: {name!r} is built in and takes no parameters here (its own "
                              f"config keys set it); give it as a plain name")
        raise ConfigError(f"unknown {key} {name!r}: neither built in ({', '.join(default.builtins)}) nor a registered "
                          f"{default.kind} plugin.{did_you_mean(name, [*default.builtins, *registry.names(default.kind)])} "
                          f"Registered {default.kind} plugins: {', '.join(registry.names(default.kind)) or '(none)'}")
    return choice
