"""The total-order sample's plan: where a job's sample reads (TeraSort's sampler: evenly spread places, a bounded
number of records at each); the coordinator runs it on the mappers and actors.core.ranges cuts the keys."""

from __future__ import annotations

from collections.abc import Collection

from ..core.errors import JobFailed, WireError
from ..core.partition import decode_key
from ..core.splits import Split

TOTAL_ORDER = "total_order"  # a job class's ``partitioner`` that asks for key ranges (actors.sdk.MapReduceJob)


def sample_places(splits: list[Split], places: int, compressed: Collection[int] = ()) -> list[Split]:
    """Up to ``places`` (MR_SAMPLE_PLACES) byte ranges evenly spread over the plan's bytes, numbered from 0.

    A range owns the lines that start in it, as a split does, and a sample reads its first records: so a plan of
    few splits, or an input already in order, is still sampled all along, not at a few split starts. A split of a
    compressed input (``compressed``: input indexes) cannot be entered mid-stream: it is read from its start, once.
    """
    total = sum(s.end - s.start for s in splits)
    if total <= 0:
        return [Split(i, s.start, s.end, s.input) for i, s in enumerate(splits[:places])]
    width = max(1, total // places)
    chosen: list[Split] = []
    whole: set[int] = set()  # compressed splits taken already
    index, before = 0, 0  # the split holding the next place, and the plan's bytes before it
    for place in range(min(places, total)):
        at = place * total // places
        while at >= before + splits[index].end - splits[index].start:
            before += splits[index].end - splits[index].start
            index += 1
        split = splits[index]
        if split.input in compressed:
            if split.index not in whole:
                whole.add(split.index)
                chosen.append(Split(len(chosen), split.start, split.end, split.input))
            continue
        start = split.start + at - before
        chosen.append(Split(len(chosen), start, min(split.end, start + width), split.input))
    return chosen


def records_per_place(sample_size: int, places: int) -> int:
    """Records each place reads so that the sample holds about ``sample_size`` (MR_SAMPLE_SIZE) in all."""
    return max(1, -(-sample_size // max(places, 1)))


def checked_samples(samples: list[str], asked: int, mapper: str) -> list[str]:
    """A sample's keys, checked before they cut anything: no more than the ``asked`` records, each a canonical key.
    A peer with the token can still lie; a lie fails the job naming the mapper, it never cuts the ranges."""
    if len(samples) > asked:
        raise JobFailed(f"{mapper} answered a sample of {asked} records with {len(samples)} keys")
    try:
        for key in samples:
            decode_key(key)
    except WireError as error:
        raise JobFailed(f"{mapper} answered a sample with a malformed key: {error.message}") from None
    return samples
