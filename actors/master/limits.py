"""Request limits: the checks a job request's numbers pass before anything is planned, spooled or held."""

from __future__ import annotations

import json
import re
from typing import Any

from ..core.config import Settings
from ..core.counters import INT64_MAX
from ..core.errors import BadRequest
from ..core.splits import input_split_counts, split_count
from ..inputs.ref import InputRef


def positive_decimal(raw: str, name: str) -> int:
    """A query parameter that must be a positive integer in plain decimal digits (no sign, space, dot, exponent)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18 or int(raw) == 0:
        raise BadRequest(f"{name} must be a positive integer in decimal digits, got {raw[:40]!r}")
    return int(raw)


def count_param(raw: str, name: str) -> int:
    """A query parameter counting things: plain ASCII decimal digits ("²" is a digit to str.isdigit, not to us)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise BadRequest(f"{name} must be a non-negative integer in decimal digits, got {raw[:40]!r}")
    return int(raw)


_SECONDS = re.compile(r"[0-9]{1,18}(\.[0-9]{1,18})?")  # longer asks are cut to MR_MAX_WAIT, not refused


def wait_seconds(raw: str) -> float:
    """``?wait=``: seconds as plain decimal digits with an optional fraction (no sign, space, "_", exponent, NaN)."""
    if not (raw.isascii() and _SECONDS.fullmatch(raw)):
        raise BadRequest(f"wait must be a number of seconds, finite and in plain decimal digits (like 30 or "
                         f"0.5), got {raw[:40]!r}")
    return float(raw)


MAX_IDEMPOTENCY_KEY = 255  # bytes; a key is held for as long as its job is known


def idempotency_key(raw: str) -> str:
    """An ``Idempotency-Key`` header: UTF-8 text of at most 255 bytes ("" when absent)."""
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError:  # aiohttp decodes header bytes that are not UTF-8 with surrogate escapes
        raise BadRequest("the Idempotency-Key header is not UTF-8 text") from None
    if size > MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"the Idempotency-Key header is {size} bytes, more than the {MAX_IDEMPOTENCY_KEY} a key "
                         "may have")
    return raw


# What reading and parsing a JSON body holds, per body byte: the body, its decoded text and the string values parsed
# out of it (a text input), each character 1, 2 or 4 bytes wide as Python stores it (the widest one decides), and
# about one more body's worth of transient buffers (the UTF-8 codec's, aiohttp's). Measured with tracemalloc:
# ASCII 3x, CJK 4x, 4-byte characters 6x, ASCII with one emoji 10x (tests/test_hostile_master.py checks it).
_WIDE4 = re.compile(rb"[\xf0-\xf4]|\\u[dD][89abAB]")  # 4-byte UTF-8, or an escaped surrogate pair
_WIDE2 = re.compile(rb"[\xc4-\xef]|\\u(?!00)")  # a character past U+00FF, raw or escaped


def parse_cost(body: bytes | bytearray, size: int) -> int:
    """Bytes of memory a JSON body of ``size`` bytes takes to read and parse: (2 + 2 x width) x size.

    ``body`` empty (not read yet): the least it can cost, width 1.
    """
    width = 4 if _WIDE4.search(body) else 2 if _WIDE2.search(body) else 1
    return (2 + 2 * width) * size


def json_split_size(spec: dict[str, Any], settings: Settings) -> int:
    """A JSON spec's ``split_size``: an integer (not 1.9, "64", true or null) no smaller than MR_SPLIT_SIZE_FLOOR."""
    if "split_size" not in spec:
        return settings.split_size
    value = spec["split_size"]
    if type(value) is not int or value <= 0:
        raise BadRequest(f"split_size must be a positive integer number of bytes, got {_shown(value)}")
    return floored(value, settings)


def json_max_bad_records(spec: dict[str, Any]) -> int:
    """A JSON spec's ``max_bad_records``: a non-negative integer (not 1.5, "3", true or null); 0 when absent."""
    value = spec.get("max_bad_records", 0)
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise BadRequest(f"max_bad_records must be an integer from 0 to {INT64_MAX} (records whose parsing or mapper "
                         f"fails that the job may skip), got {_shown(value)}")
    return value


def query_max_bad_records(raw: str | None) -> int:
    """An upload's ``?max_bad_records=``: plain decimal digits, at most a signed 64-bit integer; 0 when absent."""
    if raw is None:
        return 0
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > INT64_MAX:
        raise BadRequest(f"max_bad_records must be an integer from 0 to {INT64_MAX} in decimal digits, got "
                         f"{raw[:40]!r}")
    return int(raw)


def json_partitions(spec: dict[str, Any], settings: Settings) -> int:
    """A JSON spec's ``partitions``: an integer (not 4.0, "4", true or null) from 1 to MR_MAX_PARTITIONS; 0 when
    absent (then the job has MR_REDUCER_COUNT)."""
    if "partitions" not in spec:
        return 0
    value = spec["partitions"]
    if type(value) is not int or value <= 0:
        raise BadRequest(f"partitions must be a positive integer, got {_shown(value)}")
    return capped_partitions(value, settings)


def query_partitions(raw: str | None, settings: Settings) -> int:
    """An upload's ``?partitions=``: plain decimal digits, from 1 to MR_MAX_PARTITIONS; 0 when absent."""
    return 0 if raw is None else capped_partitions(positive_decimal(raw, "partitions"), settings)


def capped_partitions(count: int, settings: Settings) -> int:
    if count > settings.max_partitions:
        raise BadRequest(f"partitions {count} is more than the {settings.max_partitions} one job may have "
                         "(MR_MAX_PARTITIONS)")
    return count


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


def check_inputs_plan(refs: list[InputRef], split_size: int, settings: Settings, whole: bool = False) -> None:
    """Refuse, at submit, inputs that would plan more than MR_MAX_SPLITS splits in all (at least one each);
    ``whole``: the job maps each input whole (one split each)."""
    if len(refs) == 1 and not refs[0].compression and not whole:
        check_plan(refs[0].size, split_size, settings)
        return
    counts = input_split_counts([r.size for r in refs], [whole or bool(r.compression) for r in refs], split_size)
    total, limit = sum(counts), settings.max_splits
    if total > limit:
        raise BadRequest(f"{len(refs)} inputs of {sum(r.size for r in refs)} bytes at split_size {split_size} plan "
                         f"{total} splits (at least one per input), more than the {limit} one job may have "
                         "(MR_MAX_SPLITS); use a larger split_size or fewer inputs")
