"""The journal: the master's append-only record of jobs started and ended, so a restart can say what it lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.logs import EventLog
from ..inputs.ref import InputRef
from .record import JobRecord

log = EventLog(__name__)


class Journal:
    """JSON lines under the state directory; with no directory configured it records nothing."""

    def __init__(self, directory: str) -> None:
        self.path = Path(directory) / "jobs.journal" if directory else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def _append(self, entry: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as file:
            # Written through to the OS, not fsynced: this journal is for a master process that dies, not for a
            # machine that loses power, and an fsync per job costs more than the job (measured at /compute rates).
            file.write(json.dumps(entry) + "\n")

    def started(self, record: JobRecord, key: str) -> None:
        ref = record.input
        self._append({"event": "started", "id": record.id, "epoch": record.epoch, "job": record.job_name,
                      "key": key, "created": record.created, "split_size": record.split_size,
                      "input": {"kind": ref.kind, "location": ref.location, "name": ref.name, "size": ref.size}})

    def ended(self, record: JobRecord) -> None:
        self._append({"event": "ended", "id": record.id, "epoch": record.epoch, "state": record.state})

    def interrupted(self) -> list[tuple[JobRecord, str]]:
        """Jobs started and never ended: the previous master died while running them."""
        if self.path is None or not self.path.exists():
            return []
        open_jobs: dict[tuple[str, int], dict[str, Any]] = {}
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                entry = json.loads(line)
                key = (str(entry["id"]), int(entry["epoch"]))
            except (ValueError, KeyError, TypeError):
                log.warning("journal_line_skipped", line=number)  # a torn last write of a dying master
                continue
            if entry.get("event") == "started":
                open_jobs[key] = entry
            else:
                open_jobs.pop(key, None)
        lost = []
        for entry in open_jobs.values():
            ref = InputRef(**entry["input"])
            record = JobRecord(id=entry["id"], epoch=entry["epoch"], job_name=entry["job"], input=ref,
                               created=entry["created"], split_size=entry["split_size"])
            lost.append((record, str(entry.get("key", ""))))
        return lost

    def compact(self) -> None:
        """Start a fresh journal holding nothing open, once what was interrupted is reported as failed."""
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("", encoding="utf-8")
        tmp.replace(self.path)
