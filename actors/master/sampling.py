"""A total-order job's sampling run: its sample places mapped on the mappers, their keys kept and cut."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..core.config import Settings
from ..core.logs import EventLog
from ..core.messages import SplitDone
from ..core.ranges import pick_cuts
from ..core.splits import Split
from ..inputs.ref import InputRef
from .record import JobRecord
from .sampler import checked_samples, records_per_place, sample_places

log = EventLog(__name__)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class Sampling:
    """While a total-order job samples: the records each sample assignment reads, and the keys its splits gave."""

    def __init__(self, record: JobRecord, settings: Settings, clock: Callable[[], float]) -> None:
        self.record = record
        self.settings = settings
        self.clock = clock
        self.records = 0  # while a total-order job samples: the records each sample assignment reads
        self.samples: dict[int, list[str]] = {}  # the sampled keys by split, from the attempt that counted

    @property
    def fields(self) -> dict[str, object]:
        return {"job": self.record.id, "epoch": self.record.epoch}

    async def run(self, sources: list[InputRef], map_places: Callable[[list[Split]], Awaitable[None]]) -> None:
        """A total-order job's cut points: its own mapper's keys of records read at evenly spread places of the
        input, on the mappers (in their task processes, like any split), sorted in the natural order and cut."""
        record, began = self.record, self.clock()
        compressed = [i for i, source in enumerate(sources) if source.compression]
        places = sample_places(record.splits, self.settings.sample_places, compressed)
        self.records = records_per_place(self.settings.sample_size, len(places))
        try:
            await map_places(places)
        finally:
            self.records = 0
        keys = [key for split in sorted(self.samples) for key in self.samples[split]]
        self.samples.clear()
        record.cuts = pick_cuts(keys, record.partitions)
        record.phases["sample_ms"] = _ms(self.clock() - began)
        record.sample = {"places": len(places), "records_per_place": records_per_place(
            self.settings.sample_size, len(places)), "keys": len(keys), "cuts": len(record.cuts)}
        log.info("job_sampled", **self.fields, **record.sample, ms=record.phases["sample_ms"])

    def keep(self, split: int, done: SplitDone, mapper: str) -> None:
        """The counted sample attempt's keys of ``split``; JobFailed if the mapper answered more or malformed."""
        self.samples[split] = checked_samples(done.samples, self.records, mapper)
