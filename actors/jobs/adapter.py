"""The SDK adapter: any :class:`~actors.sdk.MapReduceJob` run by the engine through the internal Job protocol.

Partial values per canonical key are, for a job whose combiner (or reducer) is a declared fold (``SUM``, ``MIN``,
``MAX``), the folded value itself, merged natively where the kernel can; otherwise lists of the job's values (one
combined value when the job has a combiner of its own). A job without a combiner is a *general* job: a reducer
groups its values per key and spills sorted runs to disk past MR_REDUCE_MEMORY (actors.reducer.spill), then calls
:meth:`SdkJob.reduce_groups` over the merged runs.
"""

from __future__ import annotations

import heapq
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..core.errors import BadRequest, WireError
from ..core.keyorder import key_order, sorted_values
from ..core.partition import TAG, decode_key
from ..sdk import JobCodeError, MapReduceJob, Step, check_key, plain_value, plain_values
from .partials import fold_pairs, group_pairs, merge_folded, plain_folded, wire_keys
from .records import lines_of
from .result import Result, as_mapping, general_json, records_json
from .steps import VALUES, hook_pairs, mapped_pairs, reduced, step_count, step_of, step_shape

#: The one key of a map-only task's partial values: its records in the order mapped (see SdkJob.part_of).
IN_ORDER = ""


class SdkJob:
    """The engine's view of one configured SDK job instance."""

    def __init__(self, job: MapReduceJob, step: int = 0) -> None:
        """``step``: which of the job's steps this is. A job with ``steps()`` of its own has no declared fold here
        (a Fold in a step is called as the function it stands for), so actors that never run ``steps()`` (they
        run no user code) see every such step as a general one, values in lists."""
        self.job = job
        self.name = job.name
        self.step = step
        cls = type(job)
        self.stepped = cls.has_steps()
        self.fold = None if self.stepped else cls.declared_fold()
        # The output is a list of records, not ``{key: value}`` (see :attr:`records`): a class-level fact, or, for a
        # job with steps, its step's (known only once ``steps()`` runs).
        self._yields: bool | None = None if self.stepped else cls.yields_records()
        #: A map-only job's map task (its last step has no reducer): the records are kept in the order mapped, with
        #: no combiner, as ``[canonical key, value]`` under :data:`IN_ORDER` (see :meth:`part_of`).
        self.direct = False
        #: This step maps the previous step's records (lines of its intermediate files), not the job's input.
        self.input_records = step > 0
        # A declared reducer equal to the fold: a key's folded value is its result, with no user code run.
        self._folded_result = (self.fold is not None and cls.declared_reducer() is self.fold
                               and not cls.yields_records()
                               and cls.reducer_init is MapReduceJob.reducer_init)
        self._mapping = "mapper_batch" if cls.has_mapper_batch() else "mapper"
        self._step: Step | None = None if self.stepped else job.steps()[0]  # the default step: no user code runs

    @property
    def functions(self) -> Step:
        """The step's functions (a job's own ``steps()`` runs here, once: only where user code may run)."""
        if self._step is None:
            with self._user_code("steps", ""):
                self._step = step_of(self.job, self.step)
        return self._step

    @property
    def records(self) -> bool:
        """Whether this step outputs records rather than one value per key: for a job with steps, any step but the
        last (its records feed the next), and the last unless its reducer returns one value (steps.step_shape; this
        runs the job's ``steps()``: read it only where user code may run)."""
        if self._yields is None:
            with self._user_code("steps", ""):
                last = self.step == step_count(self.job) - 1
            self._yields = step_shape(self.functions, last) != VALUES
        return self._yields

    @property
    def _combines(self) -> bool:
        return self.fold is not None or self.functions.combiner is not None

    def map(self, text: str, source: str) -> dict[str, Any]:
        acc = self.partial()
        self.map_into(acc, text, source)
        return acc

    def partial(self) -> dict[str, Any]:
        return {}

    def map_into(self, acc: dict[str, Any], text: str, source: str) -> None:
        """The chunk's lines mapped: :meth:`map_records` of its lines."""
        self.map_records(acc, lines_of(text), source)

    def map_records(self, acc: dict[str, Any], records: list[Any], source: str) -> None:
        """A chunk's records (actors.jobs.records; for a later step, its record lines) mapped (one ``mapper_batch``
        call, or ``mapper`` per record), folded or grouped per key, then each distinct key and each value that
        travels checked once, and the whole merged into ``acc``."""
        self.merge_part(acc, self.map_part(records, source))

    def map_part(self, records: list[Any], source: str) -> dict[str, Any]:
        """The partial values of ``records`` alone: whatever fails here (the mapper, a key or value it made) is the
        records' failure (JobCodeError), which actors.jobs.skipping may skip record by record under
        ``max_bad_records``; the combiner runs only in :meth:`merge_part`."""
        self.job.input_name = source
        step = self.functions
        return self.part_of(lambda: mapped_pairs(step, records, self.input_records, self.name), self._mapping,
                            source)

    def hook_into(self, acc: dict[str, Any], hook: str, source: str) -> None:
        """Run the step's ``mapper_init`` or ``mapper_final`` once; the records it yields join ``acc``."""
        function = getattr(self.functions, hook)
        if function is not None:
            self.job.input_name = source
            self.pairs_into(acc, lambda: hook_pairs(function), hook, source)

    def raw_pairs(self, path: str, source: str) -> Iterator[tuple[Any, Any]]:
        """The pairs the step's ``mapper_raw`` makes of the whole input file at ``path``; user code runs as it is
        iterated, which :meth:`pairs_into` does."""
        self.job.input_name = source
        with self._user_code("mapper_raw", source):
            mapper_raw = self.functions.mapper_raw
            if mapper_raw is None:
                raise BadRequest(f"step {self.step + 1} has no mapper_raw, but its split is a whole input file")
            return iter(mapper_raw(path, source))

    def pairs_into(self, acc: dict[str, Any], make: Callable[[], Iterable[tuple[Any, Any]]], what: str,
                   source: str) -> None:
        """The pairs ``make`` gives (user code, named ``what`` in a failure) merged into ``acc``."""
        self.merge_part(acc, self.part_of(make, what, source))

    def part_of(self, make: Callable[[], Iterable[tuple[Any, Any]]], what: str, source: str) -> dict[str, Any]:
        """The pairs ``make`` gives, folded or grouped per key, each distinct key and each value that travels
        checked once; ``acc`` is not touched, so a failure leaves nothing half merged."""
        with self._user_code(what, source):
            pairs = make()
            if self.direct:  # a map-only task: every pair kept, in order, each key and value checked
                return {IN_ORDER: [[check_key(key), plain_value(value)] for key, value in pairs]}
            if self.fold is not None:
                return plain_folded(wire_keys(fold_pairs(self.fold, pairs)))
            grouped = wire_keys(group_pairs(pairs))
            for wire_key, values in grouped.items():
                grouped[wire_key] = plain_values(values)  # every value travels: each is checked
        return grouped

    def merge_part(self, acc: dict[str, Any], part: dict[str, Any]) -> None:
        """``part`` (from :meth:`map_part`) merged into ``acc``, combined by the job's combiner where it has one."""
        if self.direct:
            acc.setdefault(IN_ORDER, []).extend(part.get(IN_ORDER, ()))
            return
        if self.fold is not None:
            self._merge_folded(acc, part)
            return
        for wire_key, values in part.items():
            have = acc.get(wire_key)
            if have is not None:
                have.extend(values)
                values = have
            if self._combines and len(values) > 1:  # a mapper holds one value per key between chunks
                values = [self._combine(wire_key, values)]
            acc[wire_key] = values

    def _merge_folded(self, into: dict[str, Any], part: Mapping[str, Any]) -> None:
        assert self.fold is not None
        with self._user_code("combiner", ""):  # MIN/MAX of values that do not compare across chunks, say
            grown = bool(into)
            merge_folded(self.fold, into, part)
            if grown and self.fold is MapReduceJob.SUM:  # a sum may leave 64 bits: checked as it is made
                plain_values([into[wire_key] for wire_key in part])

    def _combine(self, wire_key: str, values: list[Any]) -> Any:
        combiner = self.functions.combiner
        assert combiner is not None
        with self._user_code("combiner", ""):
            return plain_value(combiner(decode_key(wire_key), values))

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
        if self.direct:
            return len(acc.get(IN_ORDER, ()))
        return len(acc) if self._combines else sum(map(len, acc.values()))

    @property
    def folds_to_result(self) -> bool:
        """A declared fold merges the partials and is the reducer too: no code of the job runs at a reducer."""
        return self._folded_result

    def combine(self, into: dict[str, Any], part: Mapping[str, Any]) -> None:
        if self.fold is not None:
            self._merge_folded(into, part)
            return
        for wire_key, values in part.items():
            have = into.get(wire_key)
            if have is None:
                into[wire_key] = list(values)
            elif self._combines:
                into[wire_key] = [self._combine(wire_key, have + list(values))]
            else:
                have.extend(values)

    def checksum(self, part: Mapping[str, Any]) -> int:
        return len(part) if self.fold is not None else sum(map(len, part.values()))

    def check(self, part: Mapping[str, Any]) -> None:
        if TAG in "".join(part):  # some key is not a plain str: each such one must decode
            for wire_key in part:
                if wire_key.startswith(TAG):
                    decode_key(wire_key)
        if self.fold is not None:
            values = list(part.values())
            if self.fold is MapReduceJob.SUM and not set(map(type, values)) <= {int, float}:
                raise WireError(f"job {self.name!r}: summed values must be numbers")
            try:
                plain_values(values)
            except BadRequest as error:
                raise WireError(f"job {self.name!r}: {error.message}") from None
            return
        for values in part.values():
            if type(values) is not list or not values:
                raise WireError(f"job {self.name!r}: partial values must be non-empty lists")
            try:
                plain_value(values)
            except BadRequest as error:
                raise WireError(f"job {self.name!r}: {error.message}") from None

    def finish(self, totals: dict[str, Any]) -> dict[str, Any]:
        """Call the job's reducer once per key, with every value the committed splits sent (a new dict, keyed by
        canonical keys as every result is); with a declared reducer equal to the fold, the folded values are the
        result."""
        if self._folded_result:
            return dict(totals)
        if self.fold is not None:
            return self.reduce_values((wire_key, iter([totals[wire_key]])) for wire_key in sorted(totals))
        return self.reduce_values(((wire_key, iter(totals[wire_key])) for wire_key in sorted(totals)), unsorted=True)

    def reduce_groups(self, groups: Iterable[tuple[str, Iterator[Any]]],
                      unsorted: bool = False) -> dict[str, Any] | list[list[Any]]:
        """The job's reducer over (canonical key, its values) groups, its reducer hooks around it, once: a list of
        ``[canonical key, value]`` records for a job whose output is records, else ``{canonical key: value}``. A
        ``sort_values`` job gets each key's values in natural value order: groups merged from sorted runs are in it
        already; ``unsorted`` ones (held in memory) are sorted here."""
        if self.records:
            return self.reduce_records(self._sorted(groups) if unsorted else groups)
        return self.reduce_values(groups, unsorted)

    def reduce_values(self, groups: Iterable[tuple[str, Iterator[Any]]], unsorted: bool = False) -> dict[str, Any]:
        """``{canonical key: value}``, one value per key from the job's reducer (each key's values a one-pass
        iterator to a job that declares ``stream_values``, else a list: one key's values must then fit in
        memory)."""
        step = self.functions
        with self._user_code("reducer_init", ""):
            hook_pairs(step.reducer_init)
        result = self._values(self._folded(self._sorted(groups) if unsorted else groups))
        with self._user_code("reducer_final", ""):
            hook_pairs(step.reducer_final)
        return result

    def reduce_records(self, groups: Iterable[tuple[str, Iterator[Any]]]) -> list[list[Any]]:
        """Every record the step's reducer (and its hooks) make, as ``[canonical key, value]``."""
        step = self.functions
        with self._user_code("reducer_init", ""):
            started = hook_pairs(step.reducer_init)
        out = self._records(started, self._folded(groups))
        with self._user_code("reducer_final", ""):
            out.extend([check_key(key), plain_value(value)] for key, value in hook_pairs(step.reducer_final))
        return out

    def _sorted(self, groups: Iterable[tuple[str, Iterator[Any]]]) -> Iterable[tuple[str, Iterator[Any]]]:
        """Each key's values in natural value order, for a ``sort_values`` job (held in memory: they fit)."""
        if not self.job.sort_values:
            return groups
        return ((wire_key, iter(sorted_values(list(values)))) for wire_key, values in groups)

    def _folded(self, groups: Iterable[tuple[str, Iterator[Any]]]) -> Iterable[tuple[str, Iterator[Any]]]:
        if self.fold is None:
            return groups
        fold = self.fold.function  # a key's folded values (one per run or split) are one value for its reducer
        return ((wire_key, iter([fold(list(values))])) for wire_key, values in groups)

    def _records(self, started: list[tuple[Any, Any]], groups: Iterable[tuple[str, Iterator[Any]]]) -> list[list[Any]]:
        streams = self.job.stream_values
        step = self.functions
        out: list[list[Any]] = []
        with self._user_code("reducer_init", ""):
            out.extend([check_key(key), plain_value(value)] for key, value in started)
        for wire_key, values in groups:
            given: Any = values if streams else list(values)
            with self._user_code("reducer", ""):
                out.extend([check_key(key), plain_value(value)]
                           for key, value in reduced(step, decode_key(wire_key), given))
        return out

    def _values(self, groups: Iterable[tuple[str, Iterator[Any]]]) -> dict[str, Any]:
        streams = self.job.stream_values
        reducer = self.functions.reducer
        if reducer is None:
            raise JobCodeError(f"job {self.name!r} has no reducer")
        out: dict[str, Any] = {}
        for wire_key, values in groups:
            key = decode_key(wire_key)
            given: Any = values if streams else list(values)  # a list: the default contract's type
            with self._user_code("reducer", ""):
                out[wire_key] = plain_value(reducer(key, given))
        return out

    def top(self, result: Mapping[str, Any], n: int) -> list[tuple[str, Any]]:
        """The ``n`` first entries (canonical keys) by the job's ``order`` of (typed key, value), ties in natural
        key order."""
        order = self.job.order
        # The job's order raising, or returning what does not compare, is the job's failure, named as such.
        entries: list[tuple[str, Any]] = []
        with self._user_code("order", ""):
            entries = heapq.nsmallest(n, result.items(), key=lambda item: _ranked(order, item))
        return entries

    def encode(self, result: Result) -> bytes:
        if isinstance(result, list):  # records, in the order the reducers made them
            return records_json(result)
        return general_json(as_mapping(result), self.top)


def _ranked(order: Any, item: tuple[str, Any]) -> tuple[Any, Any]:
    key = decode_key(item[0])
    return order(key, item[1]), key_order(key)


def user_traceback(error: BaseException) -> str:
    """``error``'s traceback from the user's code on: this module's frames, which only called it, are left out."""
    trace = traceback.TracebackException.from_exception(error)
    trace.stack = traceback.StackSummary.from_list([frame for frame in trace.stack if frame.filename != __file__])
    return "".join(trace.format())

