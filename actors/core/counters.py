"""Counters and bad records: what one task attempt counted, and a job's sums over its committed attempts only.

A task attempt counts into its own :class:`Counters` (``increment_counter`` from the job's code) and
:class:`BadRecords` (records skipped under ``max_bad_records``); they travel back with the attempt's result
(SplitDone, Report), and the master adds an attempt's counts to the job's :class:`JobTally` only when it counts that
attempt (the first SplitDone of a split, the first report of a partition), as Google MapReduce drops the counts of
re-executed tasks. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequest, shown

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Bad records a job's status lists (and an attempt sends back): the first by input and byte offset.
SHOWN_BAD_RECORDS = 100
#: Characters of a bad record's error kept (the exception's type and message).
ERROR_CHARS = 200
#: Bad records a failure past ``max_bad_records`` names.
NAMED_BAD_RECORDS = 3
#: The defaults of MR_MAX_COUNTERS (Hadoop's mapreduce.job.counters.max) and MR_MAX_COUNTER_NAME.
MAX_COUNTERS = 120
MAX_COUNTER_NAME = 256

#: The wire form of counters: group -> name -> amount.
CounterMap = dict[str, dict[str, int]]
#: The wire form of bad records: [input, byte offset, error] each.
RecordList = list[list[Any]]


class CounterLimit(BadRequest):
    """A job's counters break a limit (a name too long, too many counters, a sum past 64 bits): the job fails,
    whatever ``max_bad_records`` says."""

    code = "counter_limit"


@dataclass(frozen=True)
class CounterLimits:
    """MR_MAX_COUNTERS and MR_MAX_COUNTER_NAME, as an attempt applies them."""

    counters: int = MAX_COUNTERS
    name: int = MAX_COUNTER_NAME


class Counters:
    """One attempt's counters; a broken limit is raised (CounterLimit) and remembered in :attr:`failure`, so a
    caller that catches the job's exception (a bad record skipped) still fails the attempt."""

    def __init__(self, limits: CounterLimits) -> None:
        self.limits = limits
        self.values: dict[tuple[str, str], int] = {}
        self.failure: CounterLimit | None = None

    def increment(self, group: object, name: object, amount: object = 1) -> None:
        try:
            self._increment(group, name, amount)
        except CounterLimit as error:
            self.failure = self.failure or error
            raise

    def _increment(self, group: object, name: object, amount: object) -> None:
        check_name(group, "group", self.limits.name)
        check_name(name, "name", self.limits.name)
        assert isinstance(group, str) and isinstance(name, str)
        if type(amount) is not int:
            raise CounterLimit(f"counter {shown(group)}/{shown(name)}: an amount must be an int, not "
                               f"{type(amount).__name__} {shown(amount)}")
        if not INT64_MIN <= amount <= INT64_MAX:
            raise CounterLimit(f"counter {shown(group)}/{shown(name)}: amount {amount} is outside the signed 64-bit "
                               "range")
        key = (group, name)
        have = self.values.get(key)
        if have is None and len(self.values) >= self.limits.counters:
            raise too_many(self.limits.counters, key)
        total = (have or 0) + amount
        if not INT64_MIN <= total <= INT64_MAX:
            raise CounterLimit(f"counter {shown(group)}/{shown(name)} left the signed 64-bit range")
        self.values[key] = total

    def mark(self) -> dict[tuple[str, str], int]:
        """The counts now, to go back to with :meth:`reset` (a batch whose records are mapped again one by one)."""
        return dict(self.values)

    def reset(self, mark: dict[tuple[str, str], int]) -> None:
        self.values = mark

    def check(self) -> None:
        """Raise the limit the job's code broke, even if the job caught it."""
        if self.failure is not None:
            raise self.failure

    def to_wire(self) -> CounterMap:
        return to_map(self.values)


def check_name(text: object, what: str, limit: int) -> None:
    if type(text) is not str:
        raise CounterLimit(f"a counter's {what} must be a str, not {type(text).__name__} {shown(text)}")
    if not text:
        raise CounterLimit(f"a counter's {what} is empty")
    if len(text) > limit:
        raise CounterLimit(f"a counter's {what} {shown(text)} is {len(text)} characters, past MR_MAX_COUNTER_NAME="
                           f"{limit}")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise CounterLimit(f"a counter's {what} {shown(text)} has a lone surrogate, which has no UTF-8 form"
                               ) from None


def too_many(limit: int, key: tuple[str, str]) -> CounterLimit:
    return CounterLimit(f"counter {shown(key[0])}/{shown(key[1])} would be past the {limit} distinct counters a job "
                        f"may have (MR_MAX_COUNTERS={limit})")


def to_map(values: dict[tuple[str, str], int]) -> CounterMap:
    out: CounterMap = {}
    for (group, name), amount in sorted(values.items()):
        out.setdefault(group, {})[name] = amount
    return out


def valid_counters(value: object) -> bool:
    """The wire check of a CounterMap: str groups of str names of signed 64-bit ints (never bool)."""
    if type(value) is not dict:
        return False
    for group, names in value.items():
        if type(group) is not str or type(names) is not dict:
            return False
        for name, amount in names.items():
            if type(name) is not str or type(amount) is not int or not INT64_MIN <= amount <= INT64_MAX:
                return False
    return True


def valid_records(value: object) -> bool:
    """The wire check of a RecordList: [str, int >= 0, str] each, at most SHOWN_BAD_RECORDS of them."""
    if type(value) is not list or len(value) > SHOWN_BAD_RECORDS:
        return False
    return all(type(r) is list and len(r) == 3 and type(r[0]) is str and type(r[1]) is int and r[1] >= 0
               and type(r[2]) is str for r in value)


@dataclass(frozen=True, order=True)
class BadRecord:
    """A record skipped: its input's position in the job (for order), name, byte offset, and the error."""

    input: int
    name: str
    offset: int
    error: str

    def shown(self) -> str:
        return f"{self.name!r} at byte {self.offset}: {self.error}"

    def to_json(self) -> dict[str, Any]:
        return {"input": self.name, "offset": self.offset, "error": self.error}


def error_text(error: BaseException) -> str:
    """What a bad record's failure says, kept short."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS - 3] + "..."


class BadRecords:
    """One attempt's skipped records: their count, and the first SHOWN_BAD_RECORDS in offset order."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed  # max_bad_records: more than this in one attempt fails it (the job's sum would too)
        self.count = 0
        self.first: list[list[Any]] = []

    def add(self, name: str, offset: int, error: str) -> None:
        self.count += 1
        if len(self.first) < SHOWN_BAD_RECORDS:
            self.first.append([name, offset, error])

    @property
    def over(self) -> bool:
        return self.count > self.allowed


def past_budget(allowed: int, count: int, first: list[BadRecord]) -> str:
    """The failure of a job (or attempt) with more bad records than ``max_bad_records`` allows."""
    named = "; ".join(record.shown() for record in first[:NAMED_BAD_RECORDS])
    if allowed == 0:
        return f"a record failed (max_bad_records is 0): {named}"
    return f"{count} bad records, more than max_bad_records={allowed}; the first: {named}"


@dataclass
class JobTally:
    """A job's counters and bad records, summed over the attempts the master counted (each split's and each
    partition's once)."""

    limits: CounterLimits
    max_bad_records: int = 0
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    bad_count: int = 0
    bad_first: list[BadRecord] = field(default_factory=list)

    def add_counters(self, counted: CounterMap) -> None:
        """Add a counted attempt's counters (CounterLimit if they break a limit: names, count, 64-bit sums)."""
        for group, names in counted.items():
            check_name(group, "group", self.limits.name)
            for name, amount in names.items():
                check_name(name, "name", self.limits.name)
                key = (group, name)
                have = self.counters.get(key)
                if have is None and len(self.counters) >= self.limits.counters:
                    raise too_many(self.limits.counters, key)
                total = (have or 0) + amount
                if not INT64_MIN <= total <= INT64_MAX:
                    raise CounterLimit(f"counter {shown(group)}/{shown(name)} summed over the job left the signed "
                                       "64-bit range")
                self.counters[key] = total

    def add_bad(self, input_index: int, count: int, first: RecordList) -> None:
        """Add a counted map attempt's bad records (its count, its first few); see :meth:`over`."""
        self.bad_count += count
        merged = self.bad_first + [BadRecord(input_index, str(r[0]), int(r[1]), str(r[2])) for r in first]
        self.bad_first = sorted(merged)[:SHOWN_BAD_RECORDS]

    def over(self) -> str:
        """The job's failure if its bad records are past max_bad_records; "" if not."""
        if self.bad_count <= self.max_bad_records:
            return ""
        return past_budget(self.max_bad_records, self.bad_count, self.bad_first)

    def counters_json(self) -> CounterMap:
        return to_map(self.counters)

    def bad_json(self) -> dict[str, Any]:
        return {"allowed": self.max_bad_records, "count": self.bad_count,
                "first": [record.to_json() for record in self.bad_first]}
