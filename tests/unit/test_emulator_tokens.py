"""BatchUpdateCase's clientToken memory, with times passed in."""

from __future__ import annotations

import pytest

from bulkupdate.emulator.errors import ConflictError
from bulkupdate.emulator.tokens import ClientTokens

REQUEST = {"domainId": "d", "cases": [{"caseIdentifier": {"caseId": "c1"}}], "clientToken": "t"}
ANSWER = {"successfulCases": [{"caseIdentifier": {"caseId": "c1"}}], "failedCases": []}


def test_a_new_token_has_nothing_to_replay() -> None:
    assert ClientTokens().replay("t", REQUEST, 0.0) is None


def test_the_same_request_within_the_window_gets_the_first_answer() -> None:
    tokens = ClientTokens(window_s=60)
    tokens.remember("t", REQUEST, ANSWER, 100.0)
    same_but_reordered = dict(reversed(list(REQUEST.items())))
    assert tokens.replay("t", same_but_reordered, 159.0) == ANSWER


def test_another_request_with_the_token_is_a_conflict() -> None:
    tokens = ClientTokens(window_s=60)
    tokens.remember("t", REQUEST, ANSWER, 100.0)
    with pytest.raises(ConflictError):
        tokens.replay("t", {**REQUEST, "status": "closed"}, 101.0)


def test_after_the_window_the_token_is_forgotten() -> None:
    tokens = ClientTokens(window_s=60)
    tokens.remember("t", REQUEST, ANSWER, 100.0)
    assert tokens.replay("t", {**REQUEST, "status": "closed"}, 160.0) is None
    assert len(tokens) == 0


def test_tokens_dump_and_load_round_trip() -> None:
    tokens = ClientTokens(window_s=60)
    tokens.remember("t", REQUEST, ANSWER, 100.0)
    restored = ClientTokens(window_s=60)
    restored.load(tokens.dump())
    assert restored.replay("t", REQUEST, 120.0) == ANSWER
