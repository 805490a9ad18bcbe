"""What the client reads back about a job: its status and progress, as typed values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import PeerError

FINISHED_STATES = frozenset({"done", "failed", "cancelled"})


@dataclass(frozen=True)
class Progress:
    """How far a job is: splits and input bytes done out of the total."""

    splits_done: int = 0
    splits_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0


@dataclass(frozen=True)
class JobStatus:
    """One job's status as the master answered it; ``raw`` is the whole JSON answer."""

    id: str
    state: str
    job: str = ""
    error: str | None = None
    progress: Progress = field(default_factory=Progress)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def finished(self) -> bool:
        """Done, failed or cancelled: the job will not move again."""
        return self.state in FINISHED_STATES

    @classmethod
    def from_json(cls, body: Any) -> JobStatus:
        """Read a status, a submit answer, a job list entry or a cancel answer (fields it lacks are defaults)."""
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not isinstance(body.get("state"), str):
            raise PeerError(f"the master answered something that is not a job status: {str(body)[:200]}")
        progress = body.get("progress")
        numbers = {k: v for k, v in progress.items() if k in Progress.__dataclass_fields__ and isinstance(v, int)} \
            if isinstance(progress, dict) else {}
        error, job = body.get("error"), body.get("job")
        return cls(
            id=body["id"],
            state=body["state"],
            job=job if isinstance(job, str) else "",
            error=error if isinstance(error, str) else None,
            progress=Progress(**numbers),
            raw=body,
        )
