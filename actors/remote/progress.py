"""A job's progress for a person: the numbers as text, and a bar on stderr that is honest on a pipe too."""

from __future__ import annotations

from typing import Any, TextIO

from ..api import JobStatus
from ..core.text import escaped

BAR_WIDTH = 24


def size_text(n: Any) -> str:
    """Bytes for a person: ``512 B``, ``1.2 MiB`` (binary units, as the status page and the settings have them)."""
    value = float(n) if isinstance(n, (int, float)) and not isinstance(n, bool) else 0.0
    unit = "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"


def _share(status: JobStatus) -> float:
    """How much is done: by bytes, or by splits when the input's size is unknown."""
    p = status.progress
    if p.bytes_total:
        return min(1.0, p.bytes_done / p.bytes_total)
    return p.splits_done / p.splits_total if p.splits_total else 0.0


def progress_text(status: JobStatus) -> str:
    """Splits and bytes done, as the master counts them: ``3/8 splits, 1.2 MiB/4.0 MiB (30%)``."""
    p = status.progress
    if p.splits_total == 0:
        return "not planned yet" if not status.finished else "no splits"
    return (f"{p.splits_done}/{p.splits_total} splits, {size_text(p.bytes_done)}/{size_text(p.bytes_total)} "
            f"({100 * _share(status):.0f}%)")


def progress_bar(status: JobStatus, width: int = BAR_WIDTH) -> str:
    """One line: a bar filled by the bytes done (splits when the size is unknown), the state, the numbers once
    the job is planned: ``[######------] running: 3/8 splits, 2.0 MiB/4.0 MiB (50%)``."""
    filled = min(width, int(_share(status) * width))
    numbers = f": {progress_text(status)}" if status.progress.splits_total else ""
    return f"[{'#' * filled}{'-' * (width - filled)}] {escaped(status.state)}{numbers}"


class ProgressBar:
    """A job's progress on a stream: redrawn in place on a terminal, else one line per change (none if disabled)."""

    def __init__(self, stream: TextIO, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self.last = ""

    def show(self, status: JobStatus) -> None:
        line = progress_bar(status)
        if not self.enabled or line == self.last:
            return
        if self.tty:
            self.stream.write(f"\r{line}\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.last = line
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()
