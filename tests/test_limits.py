"""Request limits: split sizes and query numbers are strict integers, and no plan passes MR_MAX_SPLITS."""

from __future__ import annotations

from typing import Any

import pytest

from actors.core.config import Settings
from actors.core.errors import BadRequest
from actors.core.splits import split_count
from actors.master.limits import check_plan, json_split_size, positive_decimal, query_split_size

SETTINGS = Settings(split_size=1 << 20, split_size_floor=4096, max_splits=100)


@pytest.mark.parametrize("value", [1.9, 4096.0, "4096", True, False, None, [4096], {"n": 4096}, 0, -4096, "x" * 10**5])
def test_a_json_split_size_must_be_a_positive_integer(value: Any) -> None:
    with pytest.raises(BadRequest, match=r"^split_size must be a positive integer number of bytes, got .{1,60}$"):
        json_split_size({"split_size": value}, SETTINGS)


def test_a_json_split_size_is_floored_and_defaults_to_the_setting() -> None:
    assert json_split_size({}, SETTINGS) == 1 << 20
    assert json_split_size({"split_size": 4096}, SETTINGS) == 4096
    with pytest.raises(BadRequest, match=r"split_size 4095 is below .* 4096 bytes \(MR_SPLIT_SIZE_FLOOR\)"):
        json_split_size({"split_size": 4095}, SETTINGS)


ARABIC_5000 = "\u0665\u0660\u0660\u0660"  # str.isdigit() says yes; int() takes it; a query must not


@pytest.mark.parametrize("raw", ["", "0", "000", "-1", "+5000", " 5000", "5000 ", "5e3", "5000.0", "0x1388",
                                 ARABIC_5000, "5_000", "9" * 19])
def test_query_numbers_are_plain_positive_decimal_digits(raw: str) -> None:
    with pytest.raises(BadRequest, match=r"^top must be a positive integer in decimal digits"):
        positive_decimal(raw, "top")


def test_query_split_size() -> None:
    assert query_split_size(None, SETTINGS) == 1 << 20
    assert query_split_size("0004096", SETTINGS) == 4096
    with pytest.raises(BadRequest, match=r"\(MR_SPLIT_SIZE_FLOOR\)"):
        query_split_size("100", SETTINGS)


def test_a_plan_at_the_limit_passes_and_one_past_it_is_refused_with_a_split_size_that_fits() -> None:
    check_plan(100 * 4096, 4096, SETTINGS)
    check_plan(0, 4096, SETTINGS)
    with pytest.raises(BadRequest, match=r"plans 101 splits, more than the 100 one job may have \(MR_MAX_SPLITS\); "
                                         r"use a split_size of at least 4097 bytes") as caught:
        check_plan(100 * 4096 + 1, 4096, SETTINGS)
    assert "4097" in caught.value.message and split_count(100 * 4096 + 1, 4097) <= 100
    with pytest.raises(BadRequest, match=r"at least 4096 bytes"):  # never a suggestion below the floor
        check_plan(1000, 1, SETTINGS)
