"""The total-order sample's plan: where a job's sample reads (TeraSort's sampler: evenly spread places, a bounded
number of records at each); the coordinator runs it on the mappers and actors.core.ranges cuts the keys."""

from __future__ import annotations

from ..core.splits import Split

TOTAL_ORDER = "total_order"  # a job class's ``partitioner`` that asks for key ranges (actors.sdk.MapReduceJob)


def sample_places(splits: list[Split], places: int) -> list[Split]:
    """Up to ``places`` (MR_SAMPLE_PLACES) of the plan's splits, evenly spread over it: all when there are few."""
    if len(splits) <= places:
        return list(splits)
    return [splits[i * len(splits) // places] for i in range(places)]


def records_per_place(sample_size: int, places: int) -> int:
    """Records each place reads so that the sample holds about ``sample_size`` (MR_SAMPLE_SIZE) in all."""
    return max(1, -(-sample_size // max(places, 1)))
