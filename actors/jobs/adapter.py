"""The SDK adapter: any :class:`~actors.sdk.MapReduceJob` run by the engine through the internal Job protocol.

Partial values are lists of the job's values per canonical key (one combined value when the job has a combiner).
A job without a combiner is a *general* job: a reducer groups its values per key and spills sorted runs to disk
past MR_REDUCE_MEMORY (actors.reducer.spill), then calls :meth:`SdkJob.reduce_groups` over the merged runs.
"""

from __future__ import annotations

import heapq
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..core.errors import BadRequest, WireError
from ..core.partition import decode_key, display_key
from ..sdk import JobCodeError, MapReduceJob, check_key, plain_value
from .result import Result, as_mapping, general_json


class SdkJob:
    """The engine's view of one configured SDK job instance."""

    def __init__(self, job: MapReduceJob) -> None:
        self.job = job
        self.name = job.name
        self._combines = job.has_combiner()
        #: Values are grouped per key and may spill to disk (no combiner folds them as they arrive).
        self.groups = not self._combines

    def map(self, text: str, source: str) -> dict[str, Any]:
        acc = self.partial()
        self.map_into(acc, text, source)
        return acc

    def partial(self) -> dict[str, Any]:
        return {}

    def map_into(self, acc: dict[str, Any], text: str, source: str) -> None:
        job = self.job
        job.input_name = source
        grown: set[str] = set()
        with self._user_code("mapper", source):
            for line in lines_of(text):
                for key, value in job.mapper(line):
                    wire_key = check_key(key)
                    value = plain_value(value)
                    have = acc.get(wire_key)
                    if have is None:
                        acc[wire_key] = [value]
                    else:
                        have.append(value)
                        grown.add(wire_key)
        if self._combines:
            for wire_key in grown:  # keeps a mapper's memory at one value per key between chunks
                acc[wire_key] = [self._combine(wire_key, acc[wire_key])]

    def _combine(self, wire_key: str, values: list[Any]) -> Any:
        with self._user_code("combiner", ""):
            return plain_value(self.job.combiner(decode_key(wire_key), values))

    @contextmanager
    def _user_code(self, what: str, source: str) -> Iterator[None]:
        """The job's own failures as one clear, non-retried error naming the job and the function."""
        where = f"job {self.name!r}: {what}" + (f" (input {source!r})" if source else "")
        try:
            yield
        except JobCodeError:
            raise
        except BadRequest as error:  # a key or value outside the contract
            raise JobCodeError(f"{where}: {error.message}") from None
        except Exception as error:
            failure = JobCodeError(f"{where} raised {type(error).__name__}: {error}")
            failure.traceback = user_traceback(error)
            raise failure from None

    def weight(self, acc: Mapping[str, Any]) -> int:
        # With a combiner every key holds one value; without, a hot key's list is what grows.
        return len(acc) if self._combines else sum(map(len, acc.values()))

    def combine(self, into: dict[str, Any], part: Mapping[str, Any]) -> None:
        for wire_key, values in part.items():
            have = into.get(wire_key)
            if have is None:
                into[wire_key] = list(values)
            elif self._combines:
                into[wire_key] = [self._combine(wire_key, have + list(values))]
            else:
                have.extend(values)

    def checksum(self, part: Mapping[str, Any]) -> int:
        return sum(map(len, part.values()))

    def check(self, part: Mapping[str, Any]) -> None:
        for wire_key, values in part.items():
            if type(values) is not list or not values:
                raise WireError(f"job {self.name!r}: partial values must be non-empty lists")
            decode_key(wire_key)
            try:
                plain_value(values)
            except BadRequest as error:
                raise WireError(f"job {self.name!r}: {error.message}") from None

    def finish(self, totals: dict[str, Any]) -> dict[str, Any]:
        """Call the job's reducer once per key, with every value the committed splits sent (a new dict)."""
        return self.reduce_groups((wire_key, iter(totals[wire_key])) for wire_key in sorted(totals))

    def reduce_groups(self, groups: Iterable[tuple[str, Iterator[Any]]]) -> dict[str, Any]:
        """The job's reducer over (canonical key, its values) groups: a one-pass iterator to a job that declares
        ``stream_values``, else a list (one key's values must then fit in memory)."""
        streams = self.job.stream_values
        out: dict[str, Any] = {}
        for wire_key, values in groups:
            key = decode_key(wire_key)
            given: Any = values if streams else list(values)  # the declared type is the default contract's list
            with self._user_code("reducer", ""):
                out[display_key(wire_key)] = plain_value(self.job.reducer(key, given))
        return out

    def top(self, result: Mapping[str, Any], n: int) -> list[tuple[str, Any]]:
        order = self.job.order
        # The job's order raising, or returning what does not compare, is the job's failure, named as such.
        entries: list[tuple[str, Any]] = []
        with self._user_code("order", ""):
            entries = heapq.nsmallest(n, result.items(), key=lambda item: (order(item[0], item[1]), item[0]))
        return entries

    def encode(self, result: Result) -> bytes:
        return general_json(as_mapping(result), self.top)


def user_traceback(error: BaseException) -> str:
    """``error``'s traceback from the user's code on: this module's frames, which only called it, are left out."""
    trace = traceback.TracebackException.from_exception(error)
    trace.stack = traceback.StackSummary.from_list([frame for frame in trace.stack if frame.filename != __file__])
    return "".join(trace.format())


def lines_of(text: str) -> list[str]:
    """The lines of a chunk of whole lines, without their newlines (only ``\\n`` ends a line)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the piece after the last newline
    return lines
