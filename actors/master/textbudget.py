"""MR_TEXT_BUDGET: master memory for text inputs held and JSON bodies being read, and one request's share of it."""

from __future__ import annotations

from ..core.errors import PayloadTooLarge, TooManyRequests


class TextBudget:
    """Bytes of master memory for text inputs held and JSON bodies being read and parsed (MR_TEXT_BUDGET)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, extra: int, total: int, what: str) -> None:
        """Reserve ``extra`` bytes for something needing ``total`` in all: 413 if it never fits, 429 if not now."""
        if total > self.limit:
            raise PayloadTooLarge(f"{what} needs {total} bytes of master memory, more than the {self.limit} bytes "
                                  "text inputs and JSON bodies may take (MR_TEXT_BUDGET); send it as an upload "
                                  "(a raw request body) instead")
        if self.used + extra > self.limit:
            raise TooManyRequests(f"{what} needs {total} bytes of master memory; {self.used} of the {self.limit} "
                                  "bytes text inputs and JSON bodies may take are in use (MR_TEXT_BUDGET); retry "
                                  "later", retry_after=5.0)
        self.used += extra


class Reservation:
    """One request's share of the text budget while it reads and parses its body; released when it ends."""

    def __init__(self, budget: TextBudget) -> None:
        self.budget = budget
        self.held = 0

    def grow_to(self, size: int, what: str) -> None:
        if size > self.held:
            self.budget.take(size - self.held, size, what)
            self.held = size

    def hand_over(self, size: int) -> int:
        """Pass up to ``size`` reserved bytes on to a text the store now holds; how many were passed."""
        moved = min(size, self.held)
        self.held -= moved
        return moved

    def release(self) -> None:
        self.budget.used -= self.held
        self.held = 0

