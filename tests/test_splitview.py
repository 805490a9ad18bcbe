"""Split listings: the status page's query is parsed strictly, and bad values are a 400 naming the parameter."""

from __future__ import annotations

import pytest

from actors.core.errors import BadRequest
from actors.master.splitview import DEFAULT_PAGE, MAX_PAGE, SplitFilter, SplitQuery, parse_query


def test_no_splits_parameter_means_the_summary() -> None:
    assert parse_query({}) is None


@pytest.mark.parametrize("which", ["all", "failed", "running"])
def test_a_page_with_defaults(which: str) -> None:
    assert parse_query({"splits": which}) == SplitQuery(SplitFilter(which), 0, DEFAULT_PAGE)


def test_a_page_with_offset_and_limit() -> None:
    query = {"splits": "failed", "offset": "20", "limit": str(MAX_PAGE)}
    assert parse_query(query) == SplitQuery(SplitFilter.FAILED, 20, MAX_PAGE)
    assert parse_query({"splits": "all", "limit": "0"}) == SplitQuery(SplitFilter.ALL, 0, 0)
    assert parse_query({"splits": "all", "offset": "999999999999"}) == SplitQuery(SplitFilter.ALL, 999999999999)


BAD = [
    ({"splits": "done"}, "splits must be one of all, failed or running, not 'done'"),
    ({"splits": ""}, "splits must be one of"),
    ({"splits": "ALL"}, "splits must be one of"),
    ({"splits": "x" * 5000}, "not 'xxxxxxxx"),
    ({"offset": "5"}, "add splits=all, failed or running"),
    ({"limit": "5"}, "add splits=all, failed or running"),
    ({"splits": "all", "limit": str(MAX_PAGE + 1)}, f"limit must be a whole number from 0 to {MAX_PAGE}"),
    ({"splits": "all", "limit": "-1"}, "limit must be a whole number"),
    ({"splits": "all", "offset": "-1"}, "offset must be a whole number (0 or more), not '-1'"),
    ({"splits": "all", "offset": "1.5"}, "offset must be a whole number"),
    ({"splits": "all", "offset": "1e3"}, "offset must be a whole number"),
    ({"splits": "all", "offset": "inf"}, "offset must be a whole number"),
    ({"splits": "all", "limit": "nan"}, "limit must be a whole number"),
    ({"splits": "all", "limit": "Infinity"}, "limit must be a whole number"),
    ({"splits": "all", "offset": ""}, "offset must be a whole number"),
    ({"splits": "all", "offset": " 5"}, "offset must be a whole number"),
    ({"splits": "all", "offset": "+5"}, "offset must be a whole number"),
    ({"splits": "all", "offset": "\u0665"}, "offset must be a whole number"),  # an Arabic-Indic five
    ({"splits": "all", "offset": "9" * 5000}, "offset must be a whole number"),
    ({"splits": "all", "limit": "0x10"}, "limit must be a whole number"),
]


@pytest.mark.parametrize(("query", "message"), BAD, ids=[message for _, message in BAD])
def test_bad_queries_are_refused(query: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_query(query)
    assert message in info.value.message
    assert len(info.value.message) < 200  # a hostile value is not echoed whole
