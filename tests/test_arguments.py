"""Command-line argument types: what the `mapreduce` commands accept as a count, and what they refuse."""

from __future__ import annotations

import argparse

import pytest

from actors.core.arguments import positive_int


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("42", 42), (" 7 ", 7), ("+3", 3)])
def test_a_positive_integer_is_taken(text: str, value: int) -> None:
    assert positive_int(text) == value


@pytest.mark.parametrize(("text", "message"), [("0", "positive"), ("-2", "positive"), ("1.5", "not an integer"),
                                               ("", "not an integer"), ("ten", "not an integer")])
def test_anything_else_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        positive_int(text)


def test_both_command_lines_use_it() -> None:
    from actors import cli
    from actors.remote import commands

    assert getattr(cli, "positive_int") is positive_int  # noqa: B009 (not re-exported: read as the parser does)
    assert getattr(commands, "positive_int") is positive_int  # noqa: B009
