"""State machines: a table of allowed moves and the one check every transition goes through."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

S = TypeVar("S", bound=StrEnum)


class IllegalTransition(RuntimeError):
    """A state machine was asked for a move its table does not allow: a bug in the caller, never a user's doing."""


def move(machine: str, moves: Mapping[S, frozenset[S]], old: S, new: S) -> S:
    """``new`` if the table allows ``old -> new``; else raise :class:`IllegalTransition` naming both."""
    if new not in moves[old]:
        raise IllegalTransition(f"{machine}: illegal transition {old.value} -> {new.value}")
    return new
