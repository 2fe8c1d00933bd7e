"""The clientTokens BatchUpdateCase remembers: same token and same request within the window
answer the first call's response again; the same token with another request is a conflict.

Pure: no I/O; times come from the caller. AWS does not publish its window; the emulator's
default is DEFAULT_TOKEN_WINDOW_S (8 hours), set with `--token-window`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from bulkupdate.emulator.errors import ConflictError

DEFAULT_TOKEN_WINDOW_S = 8 * 3600.0


def fingerprint(params: Mapping[str, Any]) -> str:
    """The request's parameters but its token, in one canonical text."""
    return json.dumps({k: v for k, v in params.items() if k != "clientToken"}, sort_keys=True)


class ClientTokens:
    """Token -> (request fingerprint, response, time first answered), forgotten after window_s."""

    __slots__ = ("_seen", "window_s")

    def __init__(self, window_s: float = DEFAULT_TOKEN_WINDOW_S) -> None:
        self.window_s = window_s
        self._seen: dict[str, tuple[str, dict[str, Any], float]] = {}

    def replay(self, token: str, params: Mapping[str, Any], now_s: float) -> dict[str, Any] | None:
        """The first response of `token` when it is still remembered and the request is the same;
        None when it is new (or forgotten). Raises ConflictError for another request."""
        seen = self._seen.get(token)
        if seen is None:
            return None
        first, response, time_s = seen
        if now_s - time_s >= self.window_s:
            del self._seen[token]
            return None
        if first != fingerprint(params):
            raise ConflictError(
                f"The client token {token} was already used with different request parameters."
            )
        return response

    def remember(
        self, token: str, params: Mapping[str, Any], response: dict[str, Any], now_s: float
    ) -> None:
        self._seen[token] = (fingerprint(params), response, now_s)
        if len(self._seen) % 1024 == 0:  # now and then, drop what the window forgot
            self._seen = {
                t: seen for t, seen in self._seen.items() if now_s - seen[2] < self.window_s
            }

    def dump(self) -> list[list[Any]]:
        return [[token, *seen] for token, seen in self._seen.items()]

    def load(self, rows: Iterable[list[Any]]) -> None:
        self._seen = {str(t): (str(f), dict(r), float(s)) for t, f, r, s in rows}

    def __len__(self) -> int:
        return len(self._seen)
