"""Environment variables declared on dataclass fields: each one's name, parsed by its type, checked by its bounds."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Mapping
from typing import Any, Literal

from .errors import ConfigError

_UNSET: Any = object()


def declared(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields of ``cls`` read from the environment (all but nested groups)."""
    return [f for f in dataclasses.fields(cls) if "env" in f.metadata]


def env_name(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata["env"]) or f"MR_TIMEOUT_{f.name.upper()}"


def read_all(env: Mapping[str, str], cls: type) -> dict[str, Any]:
    """The declared fields of ``cls`` that ``env`` sets, parsed by their declared types."""
    hints = typing.get_type_hints(cls)
    found = {f.name: _read(env, f, hints[f.name]) for f in declared(cls)}
    return {name: value for name, value in found.items() if value is not _UNSET}


def _read(env: Mapping[str, str], f: dataclasses.Field[Any], kind: Any) -> Any:
    """The field's value from ``env``, parsed by its declared type and checked against its bounds; unset: _UNSET."""
    key = env_name(f)
    raw = env.get(key)
    if raw is None or raw.strip() == "":
        return _UNSET
    low, high = f.metadata["low"], f.metadata["high"]
    if kind is bool:
        return _boolean(key, raw)
    if kind is int:
        try:
            value: float = int(raw)
        except ValueError:
            raise ConfigError(f"{key}={raw!r} is not an integer") from None
    elif kind is float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{key}={raw!r} is not a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"{key}={raw!r} is not a finite number")
    elif typing.get_origin(kind) is Literal:
        choice = raw.strip().lower()
        options = typing.get_args(kind)
        if choice not in options:
            raise ConfigError(f"{key}={choice!r} must be one of {', '.join(options)}")
        return choice
    elif kind == tuple[str, ...]:
        if key == "MR_ALLOWED_HOSTS":
            return _hosts(key, raw)
        return _modules(key, raw) if key == "MR_JOB_MODULES" else _urls(key, raw)
    else:
        return raw
    if low is not None and value < low:
        raise ConfigError(f"{key}={value} is below its minimum {low}")
    if high is not None and value > high:
        raise ConfigError(f"{key}={value} is above its maximum {high}")
    return value


def _boolean(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key}={value!r} is not a boolean (use true or false)")


def _urls(key: str, raw: str) -> tuple[str, ...]:
    urls = tuple(u.strip().rstrip("/") for u in raw.split(",") if u.strip())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{key}: {url!r} is not an http(s) URL")
    return urls


_HOST_NAME = re.compile(r"(\*|\.?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\])")


def _hosts(key: str, raw: str) -> tuple[str, ...]:
    """Host names, lower-cased; ports are not compared (a rebinding page is told apart by its name, not its port)."""
    names = tuple(name.strip().lower().rstrip(".") for name in raw.split(",") if name.strip())
    for name in names:
        if not _HOST_NAME.fullmatch(name):
            raise ConfigError(f"{key}: {name!r} is not a host name, .domain or * (no scheme, port or path)")
    return names


def _modules(key: str, raw: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ConfigError(f"{key}: {name!r} is not a dotted module name")
    return names
