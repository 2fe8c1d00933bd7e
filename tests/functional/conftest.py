"""Fixtures shared by the functional tests of `run`, `undo` and `verify`."""

from __future__ import annotations

import pytest

from tests.motoserver import use_moto


@pytest.fixture(params=["sqlite", "dynamodb"])
def checkpoint_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which checkpoint a job keeps: a SQLite file, or a DynamoDB table on the moto server (the
    AWS environment of this process then points at it, as a user's would)."""
    if request.param == "dynamodb":
        use_moto(monkeypatch, request.getfixturevalue("moto_url"))
    return str(request.param)
