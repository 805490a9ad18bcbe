"""Request limits: the checks a job request's numbers pass before anything is planned, spooled or held."""

from __future__ import annotations

import json
from typing import Any

from ..core.config import Settings
from ..core.errors import BadRequest
from ..core.splits import split_count


def positive_decimal(raw: str, name: str) -> int:
    """A query parameter that must be a positive integer in plain decimal digits (no sign, space, dot, exponent)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18 or int(raw) == 0:
        raise BadRequest(f"{name} must be a positive integer in decimal digits, got {raw[:40]!r}")
    return int(raw)


def json_split_size(spec: dict[str, Any], settings: Settings) -> int:
    """A JSON spec's ``split_size``: an integer (not 1.9, "64", true or null) no smaller than MR_SPLIT_SIZE_FLOOR."""
    if "split_size" not in spec:
        return settings.split_size
    value = spec["split_size"]
    if type(value) is not int or value <= 0:
        raise BadRequest(f"split_size must be a positive integer number of bytes, got {_shown(value)}")
    return floored(value, settings)


def _shown(value: Any) -> str:
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return json.dumps(value[:40]) if isinstance(value, str) else f"a JSON {type(value).__name__}"


def query_split_size(raw: str | None, settings: Settings) -> int:
    """An upload's ``?split_size=``: plain decimal digits, no smaller than MR_SPLIT_SIZE_FLOOR."""
    return settings.split_size if raw is None else floored(positive_decimal(raw, "split_size"), settings)


def floored(split_size: int, settings: Settings) -> int:
    """A requested split size, refused below the floor: below it, assignment and streams cost more than the work."""
    floor = settings.split_size_floor
    if split_size < floor:
        raise BadRequest(f"split_size {split_size} is below the smallest split size a request may ask for, "
                         f"{floor} bytes (MR_SPLIT_SIZE_FLOOR)")
    return split_size


def check_plan(size: int, split_size: int, settings: Settings) -> None:
    """Refuse, at submit, an input that would plan more than MR_MAX_SPLITS splits at this split size."""
    count, limit = split_count(size, split_size), settings.max_splits
    if count > limit:
        least = max(-(-size // limit), settings.split_size_floor)
        raise BadRequest(f"an input of {size} bytes at split_size {split_size} plans {count} splits, more than the "
                         f"{limit} one job may have (MR_MAX_SPLITS); use a split_size of at least {least} bytes")
