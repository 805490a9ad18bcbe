"""The journal: the master's append-only record of jobs started and ended, so a restart can say what it lost."""

from __future__ import annotations

import json
import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..core.logs import EventLog
from ..inputs.ref import MANY, PATH, S3, SERVED, URL, InputRef
from .record import JobRecord

log = EventLog(__name__)

# The fields each event must carry, with the types they must have: a record that does not match is skipped,
# never trusted (a bool is not an int, as everywhere on the wire).
_INT, _NUMBER, _STR = (int,), (int, float), (str,)
_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "started": {"id": _STR, "epoch": _INT, "job": _STR, "key": _STR, "created": _NUMBER, "split_size": _INT,
                "input": (dict,)},
    "ended": {"id": _STR, "epoch": _INT, "state": _STR},
}
_INPUT_FIELDS: dict[str, tuple[type, ...]] = {"kind": _STR, "location": _STR, "name": _STR, "size": _INT}
_KINDS = frozenset({SERVED, PATH, URL, S3, MANY})  # MANY: the summary of a job's several inputs
# Numbers that must not be negative (a size, an epoch, a time) and those that must be positive.
_NOT_NEGATIVE = ("epoch", "created")
_POSITIVE = ("split_size",)


class BadRecord(ValueError):
    """One journal line that cannot be used; the message says why."""


def _check(entry: dict[str, Any], fields: dict[str, tuple[type, ...]], where: str) -> None:
    missing = sorted(set(fields) - set(entry))
    if missing:
        raise BadRecord(f"{where}missing fields {missing}")
    for name, kinds in fields.items():
        value = entry[name]
        if isinstance(value, bool) or not isinstance(value, kinds):
            wanted = " or ".join(k.__name__ for k in kinds)
            raise BadRecord(f"{where}field {name!r} is {type(value).__name__}, not {wanted}")


def _no_constant(name: str) -> Any:
    # NaN and Infinity are Python's extensions to JSON; a status carrying one is not JSON any more.
    raise BadRecord(f"{name} is not a JSON number")


def _check_values(entry: dict[str, Any]) -> None:
    """What the types alone do not say: finite, in range, a known input kind."""
    for name in _NOT_NEGATIVE:
        value = entry.get(name)
        if isinstance(value, (int, float)) and not (math.isfinite(value) and value >= 0):
            raise BadRecord(f"field {name!r} is {value!r}, not a finite number >= 0")
    for name in _POSITIVE:
        value = entry.get(name)
        if isinstance(value, int) and value <= 0:
            raise BadRecord(f"field {name!r} is {value}, not > 0")


def parse_line(raw: bytes) -> dict[str, Any]:
    """One journal line as a checked entry, or :class:`BadRecord` saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRecord(f"not UTF-8 (byte {exc.start})") from None
    try:
        entry = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise BadRecord(f"not JSON ({exc.msg} at column {exc.colno}); a torn write?") from None
    except BadRecord:
        raise
    except ValueError as exc:  # an integer past Python's digit limit (sys.set_int_max_str_digits)
        raise BadRecord(f"a number too long to read ({str(exc)[:80]})") from None
    except RecursionError:
        raise BadRecord("nested too deeply to read") from None
    if not isinstance(entry, dict):
        raise BadRecord(f"a JSON {type(entry).__name__}, not an object")
    event = entry.get("event")
    if event not in _FIELDS:
        raise BadRecord(f"unknown event {event!r}")
    _check(entry, _FIELDS[event], "")
    _check_values(entry)
    if event == "started":
        ref = entry["input"]
        extra = sorted(set(ref) - set(_INPUT_FIELDS))
        if extra:
            raise BadRecord(f"input has unknown fields {extra}")
        _check(ref, _INPUT_FIELDS, "input ")
        if ref["kind"] not in _KINDS:
            raise BadRecord(f"input kind {ref['kind']!r} is not one of {sorted(_KINDS)}")
        if ref["size"] < 0:
            raise BadRecord(f"input size {ref['size']} is negative")
    return entry


class Journal:
    """JSON lines under the state directory; with no directory configured it records nothing.

    Appends run on a writer thread of its own, in order, so a slow state volume never stalls the event loop;
    :meth:`close` waits for the ones queued. Reading (:meth:`interrupted`, :meth:`compact`) is for startup, before
    any append, and runs wherever it is called (the app calls it in a thread).
    """

    def __init__(self, directory: str) -> None:
        self.path = Path(directory) / "jobs.journal" if directory else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # One thread: appends land in the order they were made (a job's "started" before its "ended").
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")

    def _append(self, entry: dict[str, Any]) -> None:
        if self.path is not None:
            self._writer.submit(self._write, self.path, entry).add_done_callback(self._written)

    def close(self) -> None:
        """Write what is queued, then stop the writer thread (blocks: call it in a thread from async code)."""
        self._writer.shutdown(wait=True)

    def _written(self, done: Future[None]) -> None:
        error = done.exception()
        if error is not None:  # a full or read-only volume: the job runs on, its record is what is lost
            log.error("journal_write_failed", path=str(self.path), error=repr(error))

    @staticmethod
    def _write(path: Path, entry: dict[str, Any]) -> None:
        with open(path, "a", encoding="utf-8") as file:
            # Written through to the OS, not fsynced: this journal is for a master process that dies, not for a
            # machine that loses power, and an fsync per job costs more than the job (measured at /compute rates).
            file.write(json.dumps(entry) + "\n")

    def started(self, record: JobRecord, key: str) -> None:
        ref = record.input
        self._append({"event": "started", "id": record.id, "epoch": record.epoch, "job": record.job_name,
                      "key": key, "created": record.created, "split_size": record.split_size,
                      "params": record.params,
                      "input": {"kind": ref.kind, "location": ref.location, "name": ref.name, "size": ref.size}})

    def ended(self, record: JobRecord) -> None:
        self._append({"event": "ended", "id": record.id, "epoch": record.epoch, "state": record.state})

    def interrupted(self) -> list[tuple[JobRecord, str]]:
        """Jobs started and never ended: the previous master died while running them.

        A line that cannot be used (not UTF-8, torn, missing or mistyped fields) is logged with its number and
        skipped: one bad line must not stop the master from starting, nor hide the good lines around it.
        """
        if self.path is None or not self.path.exists():
            return []
        open_jobs: dict[tuple[str, int], dict[str, Any]] = {}
        for number, raw in enumerate(self.path.read_bytes().split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                entry = parse_line(raw)
            except BadRecord as error:
                log.warning("journal_line_skipped", path=str(self.path), line=number, reason=str(error))
                continue
            key = (entry["id"], entry["epoch"])
            if entry["event"] == "started":
                open_jobs[key] = entry
            else:
                open_jobs.pop(key, None)
        lost = []
        for entry in open_jobs.values():
            ref = InputRef(**entry["input"])
            record = JobRecord(id=entry["id"], epoch=entry["epoch"], job_name=entry["job"], input=ref,
                               created=float(entry["created"]), split_size=entry["split_size"])
            lost.append((record, entry["key"]))
        return lost

    def compact(self) -> None:
        """Start a fresh journal holding nothing open, once what was interrupted is reported as failed."""
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("", encoding="utf-8")
        tmp.replace(self.path)
