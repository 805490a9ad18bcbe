"""Command-line argument types the ``mapreduce`` commands share (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse


def non_negative_int(text: str) -> int:
    """An integer of at least 0 (``--max-bad-records 0``: none skipped)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a non-negative integer (0 or more)")
    return value


def positive_int(text: str) -> int:
    """An integer of at least 1, so no number silently means "the default" or "all"."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer (1 or more)")
    return value
