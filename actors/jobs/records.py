"""Record formats: an input's lines parsed into the records a job's mapper gets (``lines``, ``jsonl`` or ``csv``).

Every format is line-aligned: a record is one line (its ``\\n`` and a ``\\r`` before it stripped), so splits stay
line-aligned and any split re-reads the same records. A record that does not parse raises
:class:`~actors.sdk.RecordError` naming its input and its byte offset in that input. Parsing runs where the mapper
runs (a task process, the sequential oracle), chunk by chunk, from the chunk's raw bytes, so offsets are exact even
after invalid UTF-8 (decoded with replacement characters, as for lines).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from typing import Any

from ..core.errors import shown
from ..sdk import RecordError

LINES = "lines"
JSONL = "jsonl"
CSV = "csv"
FORMATS = (LINES, JSONL, CSV)
DEFAULT_FORMAT = LINES
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte order mark: stripped at byte 0 of an input, never elsewhere


def lines_of(text: str) -> list[str]:
    """The lines of a chunk of whole lines, without their line ends: ``\\n``, or ``\\r\\n`` (a CRLF file's lines
    keep no ``\\r``; the last line's ``\\r`` goes too when the input ends there without its ``\\n``)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the piece after the last newline
    elif lines and lines[-1].endswith("\r"):
        lines[-1] = lines[-1][:-1]
    return lines


def check_format(value: object, what: str = '"format"') -> str:
    """``value`` if it names a record format; ValueError naming ``what`` and the formats otherwise."""
    if value not in FORMATS:
        raise ValueError(f"{what} must be one of {', '.join(FORMATS)}, not {shown(value)}")
    return str(value)


def parse(data: bytes, fmt: str, source: str, offset: int) -> list[Any]:
    """The records of ``data``, whole lines of input ``source`` starting at byte ``offset`` of it, in format
    ``fmt``: strs for ``lines``; for ``jsonl`` each line's JSON value; for ``csv`` each line's list of fields.
    ``jsonl`` skips a blank line (only whitespace), ``csv`` an empty one; any other line is a record or a
    :class:`RecordError`."""
    lines = lines_of(data.decode("utf-8", "replace"))
    if fmt == LINES:
        return lines
    if fmt == JSONL:
        return _parsed(lines, _json, _blank, data, source, offset)
    if fmt == CSV:
        rows = _csv_fast(lines)
        return rows if rows is not None else _parsed(lines, _csv, _empty, data, source, offset)
    raise ValueError(f"unknown record format {shown(fmt)}")


def _blank(line: str) -> bool:
    return not line.strip(" \t\r")  # JSON's own whitespace only: json.loads refuses a line of U+3000


def _empty(line: str) -> bool:
    return not line  # the csv module's reading of an empty line: no fields at all


def _parsed(lines: list[str], parse_one: Callable[[str], Any], skip: Callable[[str], bool], data: bytes, source: str,
            offset: int) -> list[Any]:
    records: list[Any] = []
    for index, line in enumerate(lines):
        if skip(line):
            continue  # no record
        try:
            records.append(parse_one(line))
        except _Bad as error:
            raise RecordError(source, offset + _line_start(data, index), str(error)) from None
    return records


class _Bad(Exception):
    """Why one line is not a record of its format."""


def _constant(name: str) -> Any:
    raise _Bad(f"not a JSON line: {name} is not JSON")


def _json(line: str) -> Any:
    try:
        return json.loads(line, parse_constant=_constant)
    except RecursionError:
        raise _Bad("not a JSON line: nested too deeply") from None
    except ValueError as error:  # json.JSONDecodeError
        raise _Bad(f"not a JSON line: {error}") from None


def _csv(line: str) -> list[str]:
    reader = csv.reader((line,), strict=True)
    try:
        return next(reader)
    except csv.Error as error:
        if "unexpected end of data" in str(error):
            raise _Bad("a quoted CSV field does not end on its line (a CSV record is one line: a newline inside "
                       "quotes is not supported)") from None
        raise _Bad(f"not a CSV record: {error}") from None


def _csv_fast(lines: list[str]) -> list[list[str]] | None:
    """Every line's fields from one reader, empty lines left out; None when some line is not a record on its own
    (the reader failed, or a quoted field went on to the next line): then each line is parsed alone."""
    reader = csv.reader(lines, strict=True)
    rows: list[list[str]] = []
    try:
        for number, row in enumerate(reader, 1):
            if reader.line_num != number:
                return None
            if row:
                rows.append(row)
    except csv.Error:
        return None
    return rows


def _line_start(data: bytes, index: int) -> int:
    """The byte offset in ``data`` where its line ``index`` starts (lines end at ``\\n``, in bytes as in text)."""
    at = 0
    for _ in range(index):
        at = data.index(b"\n", at) + 1
    return at


def input_records(data: bytes | str, fmt: str, source: str) -> list[Any]:
    """The records of a whole input, as the mappers of all its splits give them: a BOM at its start stripped, offsets
    counted from its first byte. A str is its text (a lines input's lone surrogates kept as they are)."""
    if isinstance(data, str):
        if fmt == LINES:
            return lines_of(data[1:] if data.startswith("\ufeff") else data)
        data = data.encode("utf-8", "surrogatepass")
    start = len(BOM) if data.startswith(BOM) else 0
    return parse(data[start:], fmt, source, start)
