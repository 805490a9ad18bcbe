"""Attempt keys (actors/core/keys.py): compared whole, hashable, never a bare tuple."""

from __future__ import annotations

import dataclasses

import pytest

from actors.core.keys import AttemptKey


def test_a_key_is_not_a_tuple_and_cannot_change() -> None:
    key = AttemptKey("job-1", 2, 3, 1)
    assert key != ("job-1", 2, 3, 1)  # type: ignore[comparison-overlap]  # the point: no tuple equality
    assert hash(key) == hash(AttemptKey("job-1", 2, 3, 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.attempt = 2  # type: ignore[misc]
