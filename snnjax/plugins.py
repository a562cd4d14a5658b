"""The plugin registry: discovers plugins through the ``snnjax`` entry-point group.

>>> from snnjax.plugins import get_registry
>>> reg = get_registry()
>>> rule = reg.create("rule", "stdp", a_pre=5e-4)          # doctest: +SKIP

Environment variable ``SNNJAX_PLUGINS``: a comma-separated list of entry-point
names (e.g. ``rules,neurons``) or distribution names (e.g. ``snnjax``); when set,
only those entry points load. Use it to pin the plugins of a reproducible run.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, SnnjaxError, did_you_mean

ENV_VAR = "SNNJAX_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin."""

    kind: str
    name: str
    factory: Any
    module: str
    distribution: str

    @property
    def doc(self) -> str:
        """First line of the factory's docstring."""
        doc = inspect.getdoc(self.factory) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


class Registry:
    """All plugins of every kind, by name. Built once; read-only afterwards."""

    def __init__(self, plugins: dict[str, dict[str, PluginInfo]], filter_note: str = ""):
        self._plugins = plugins
        #: why plugins may be missing (the ``SNNJAX_PLUGINS`` filter and what it left out), or ``""``
        self.filter_note = filter_note

    def kinds(self) -> list[str]:
        return list(hookspecs.KINDS)

    def names(self, kind: str) -> list[str]:
        """Sorted names of the registered plugins of ``kind``."""
        self._check_kind(kind)
        return sorted(self._plugins.get(kind, {}))

    def info(self, kind: str, name: str) -> PluginInfo:
        """The :class:`PluginInfo` of ``name``; a clear error listing what exists."""
        self._check_kind(kind)
        table = self._plugins.get(kind, {})
        if name not in table:
            avail = ", ".join(sorted(table)) or "(none)"
            raise PluginError(
                f"unknown {kind} plugin {name!r}.{did_you_mean(name, table)} "
                f"Available {kind} plugins: {avail}. "
                + (f"{self.filter_note} " if self.filter_note else "")
                + "(Third-party plugins appear here once their package is installed; see `snnjax plugins`.)"
            )
        return table[name]

    def get(self, kind: str, name: str) -> Any:
        """The factory registered as ``name``."""
        return self.info(kind, name).factory

    def create(self, kind: str, name: str, /, **params: Any) -> Any:
        """Call the factory of ``name`` with ``params`` (unknown params: clear error)."""
        info = self.info(kind, name)
        factory = info.factory
        _check_params(factory, kind, name, params)
        try:
            return factory(**params)
        except SnnjaxError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken third-party factory is the plugin's error
            raise PluginError(f"{kind} plugin {name!r} (from {info.module!r}, {info.distribution}) failed to build: "
                              f"{type(exc).__name__}: {exc}. Fix or uninstall that plugin, or leave it out with "
                              f"{ENV_VAR}.") from exc

    def all(self) -> list[PluginInfo]:
        return [p for kind in hookspecs.KINDS for p in sorted(self._plugins.get(kind, {}).values(), key=lambda p: p.name)]

    def _check_kind(self, kind: str) -> None:
        if kind not in hookspecs.KINDS:
            raise PluginError(f"unknown plugin kind {kind!r}; kinds are {', '.join(hookspecs.KINDS)}")


def _check_params(factory: Any, kind: str, name: str, params: dict[str, Any]) -> None:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    allowed = [p for p in sig.parameters if sig.parameters[p].kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for key in params:
        if key not in allowed:
            raise PluginError(
                f"{kind} plugin {name!r} has no parameter {key!r}.{did_you_mean(key, allowed)} "
                f"Its parameters: {', '.join(allowed) or '(none)'}"
            )


def choice_name(choice: Any) -> str:
    """The plugin name of a config choice (``"name"`` or ``{"name": ..., ...}``)."""
    return choice if isinstance(choice, str) else choice["name"]


def choice_params(choice: Any) -> dict[str, Any]:
    """The parameters of a config choice (``{}`` for a plain name)."""
    return {} if isinstance(choice, str) else {k: v for k, v in choice.items() if k != "name"}


def check_choice(registry: Registry, kind: str, choice: Any, key: str,
                 check: Callable[[Any], None] | None = None) -> Any:
    """Check a plugin choice of config key ``key`` against ``registry``; return it with typed parameters.

    The name must be a registered ``kind`` plugin (a "did you mean" otherwise); every
    parameter must be one the factory takes, and takes the type of the factory's default
    (an ``int`` where the default is a ``float`` becomes a ``float``; a string from ``--set``
    is read as that type). A choice with parameters of a model, encoder, rule, inhibition or
    regularizer is then built once (plugin factories are cheap) so that a value the factory
    refuses (``neuron.tau_m_ms=-5``) is a config error of ``key`` before the run, and under
    ``--dry-run``; a factory that needs a value the experiment gives it (no default) is not
    built here. ``check``: what the config key needs of the plugin (see
    :func:`snnjax.config.plugin_key`), called on the built plugin, parameters or not.
    Returns ``"name"`` when there are no parameters, else ``{"name": name, **params}``.
    """
    from .config import _coerce, _parse_literal
    from .errors import ConfigError, InputError

    if isinstance(choice, dict) and "name" not in choice:
        raise ConfigError(f"config key {key!r} gives parameters {', '.join(map(repr, choice))} but no plugin name: "
                          f"add name = \"...\" (--set {key}.name=...)")
    name = choice_name(choice)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"config key {key!r}: a {kind} plugin name must be a non-empty string, got {name!r}")
    try:
        factory = registry.get(kind, name)
    except PluginError as exc:
        raise ConfigError(f"config key {key!r}: {exc}") from None
    params = choice_params(choice)
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return {"name": name, **params} if params else name
    takes = {p: v for p, v in sig.parameters.items()
             if v.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    typed: dict[str, Any] = {}
    for param, value in params.items():
        if param not in takes:
            if open_ended:  # a factory taking **params: no type to go by
                typed[param] = _parse_literal(f"{key}.{param}", value, None) if isinstance(value, str) else value
                continue
            raise ConfigError(f"config key {key!r}: {kind} plugin {name!r} has no parameter {param!r}."
                              f"{did_you_mean(param, list(takes))} Its parameters: {', '.join(takes) or '(none)'}")
        default = takes[param].default
        if default is inspect.Parameter.empty or default is None:  # no type to go by: a literal, else text
            typed[param] = _parse_literal(f"{key}.{param}", value, None) if isinstance(value, str) else value
        else:
            typed[param] = _coerce(f"{key}.{param}", value, default)
    buildable = all(p in typed or v.default is not inspect.Parameter.empty for p, v in takes.items())
    if kind in BUILT_WHEN_CHECKED and buildable and (typed or check is not None):
        try:
            plugin = registry.create(kind, name, **typed)
            if check is not None:
                check(plugin)
        except (ConfigError, InputError) as exc:
            raise ConfigError(f"config key {key!r}: {exc}") from None
    return {"name": name, **typed} if typed else name


#: Plugin kinds whose factories :func:`check_choice` builds to check parameter values (the others
#: — datasets, experiments — may read data or do real work when built).
BUILT_WHEN_CHECKED = ("neuron", "encoder", "rule", "inhibition", "regularizer")


def create_choice(registry: Registry, kind: str, choice: Any, /, **context: Any) -> Any:
    """Build a checked plugin choice; ``context`` (e.g. ``n_classes``) fills parameters its factory takes.

    A ``context`` value is passed only where the factory has that parameter and the
    choice does not set it.
    """
    name, params = choice_name(choice), choice_params(choice)
    try:
        takes = inspect.signature(registry.get(kind, name)).parameters
    except (TypeError, ValueError):
        takes = {}
    for param, value in context.items():
        if param in takes and param not in params:
            params[param] = value
    return registry.create(kind, name, **params)


def chain_parts(rule: Any, reg_choices: Sequence[Any], regs: Sequence[Any]) -> list[tuple[str, Any]]:
    """``(name, rule)`` parts for :func:`snnjax.plasticity.named_chain`: the rule, then each regularizer.

    Parts are named by their plugin names (``rule`` for the rule); a name that repeats gets
    ``#2``, ``#3``, ... so that :func:`snnjax.plasticity.part` finds each.
    """
    parts: list[tuple[str, Any]] = [("rule", rule)]
    seen: dict[str, int] = {"rule": 1}
    for choice, reg in zip(reg_choices, regs):
        name = choice_name(choice)
        seen[name] = seen.get(name, 0) + 1
        parts.append((name if seen[name] == 1 else f"{name}#{seen[name]}", reg))
    return parts


def _allowed(ep_name: str, dist: str, only: set[str] | None) -> bool:
    return only is None or ep_name in only or dist in only


def build_registry(extra_plugins: Iterable[ModuleType | object] = (), *, use_entry_points: bool = True) -> Registry:
    """Load the entry points of group ``snnjax`` (and ``extra_plugins``) into a :class:`Registry`.

    Raises :class:`PluginError` when a plugin fails to import, when two plugins
    register the same name for the same kind, or when a hook returns something
    other than a ``dict`` of factories.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    sources: dict[int, tuple[str, str]] = {}
    only_env = os.environ.get(ENV_VAR)
    only = {s.strip() for s in only_env.split(",") if s.strip()} if only_env else None
    if only_env is not None and not only:
        raise PluginError(f"{ENV_VAR}={only_env!r} names no plugin: give comma-separated entry-point or "
                          f"distribution names (see `snnjax plugins --json`), or unset it")
    skipped: list[str] = []
    if use_entry_points:
        for ep in sorted(entry_points(group=hookspecs.PROJECT), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else "?"
            if not _allowed(ep.name, dist, only):
                skipped.append(ep.name)
                continue
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - report any import failure clearly
                raise PluginError(
                    f"plugin entry point {ep.name!r} ({ep.value}) from distribution {dist!r} failed to import: "
                    f"{type(exc).__name__}: {exc}. Fix or uninstall that package, or limit the plugins that load "
                    f"with {ENV_VAR}=name1,name2."
                ) from exc
            if pm.is_registered(module):
                continue
            pm.register(module, name=f"{dist}:{ep.name}")
            sources[id(module)] = (dist, getattr(module, "__name__", ep.value))
    for obj in extra_plugins:
        if not pm.is_registered(obj):
            pm.register(obj)
            sources[id(obj)] = ("(local)", getattr(obj, "__name__", type(obj).__name__))

    table: dict[str, dict[str, PluginInfo]] = {kind: {} for kind in hookspecs.KINDS}
    for kind, hook_name in hookspecs.KINDS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            dist, modname = sources.get(id(impl.plugin), ("?", getattr(impl.plugin, "__name__", "?")))
            try:
                result = impl.function()
            except Exception as exc:  # noqa: BLE001
                raise PluginError(f"plugin {modname!r} ({dist}) raised in hook {hook_name}: {type(exc).__name__}: {exc}") from exc
            if result is None:
                continue
            if not isinstance(result, dict):
                raise PluginError(f"plugin {modname!r} hook {hook_name} must return a dict name -> factory, got {type(result).__name__}")
            for name, factory in result.items():
                if not callable(factory):
                    raise PluginError(f"plugin {modname!r} registers {kind} {name!r} with a non-callable {factory!r}")
                if name in table[kind]:
                    other = table[kind][name]
                    raise PluginError(
                        f"{kind} plugin name collision: {name!r} is registered by {other.module!r} ({other.distribution}) "
                        f"and by {modname!r} ({dist}). Uninstall one, or restrict loading with {ENV_VAR}."
                    )
                table[kind][name] = PluginInfo(kind, name, factory, modname, dist)
    note = ""
    if only is not None:
        loaded = {p.module for kind in table.values() for p in kind.values()}
        unknown = sorted(n for n in only if n not in {ep.name for ep in entry_points(group=hookspecs.PROJECT)}
                         and n not in {ep.dist.name for ep in entry_points(group=hookspecs.PROJECT) if ep.dist})
        note = (f"{ENV_VAR}={only_env!r} limits the plugins that load"
                + (f" (it left out the entry points {', '.join(skipped)})" if skipped else "")
                + (f"; it names {', '.join(map(repr, unknown))}, which no installed package provides" if unknown else "")
                + ".")
        if use_entry_points and not loaded and not extra_plugins:
            raise PluginError(f"{note} Nothing is left to load: unset {ENV_VAR}, or list entry-point or distribution "
                              f"names (see `snnjax plugins --json` without it)")
    return Registry(table, note)


@functools.cache
def get_registry() -> Registry:
    """The registry of installed plugins (built on first use, then cached)."""
    return build_registry()
