"""Settings of one emulator instance: address, quotas, faults, auth, DateTime encoding, seed
and persistence. Frozen; parsing of the command-line spellings lives here too.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bulkupdate.emulator.faults import FaultConfig
from bulkupdate.emulator.quotas import DEFAULT_QUOTAS, Quota
from bulkupdate.emulator.records import DateTimeEncoding
from bulkupdate.emulator.tokens import DEFAULT_TOKEN_WINDOW_S

# Access key and secret the emulator accepts by default when it verifies signatures.
DEFAULT_CREDENTIALS = {"AKIDEMULATOR": "emulator-secret"}


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 4566  # 0 picks a free port (tests, benchmarks)
    # Operation -> quota; None means no limit. Missing operations get AWS's defaults.
    quotas: Mapping[str, Quota | None] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    faults: FaultConfig = field(default_factory=FaultConfig)
    datetime_encoding: DateTimeEncoding = DateTimeEncoding.ISO8601
    verify_signatures: bool = False
    credentials: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CREDENTIALS))
    region: str = "us-east-1"
    account_id: str = "123456789012"
    seed_path: Path | None = None
    demo_cases: int = 0  # > 0 seeds the demo domain with this many cases
    state_path: Path | None = None  # persist state here across restarts
    snapshot_interval_s: float = 10.0
    # How long BatchUpdateCase remembers a clientToken (AWS does not publish its window).
    token_window_s: float = DEFAULT_TOKEN_WINDOW_S
    # SearchCases reads an index this far behind writes (0: none): a case changed within it is
    # found by its old values, one created within it not at all.
    search_lag_s: float = 0.0


def no_quotas() -> dict[str, Quota | None]:
    return dict.fromkeys(DEFAULT_QUOTAS)


def parse_quota(spec: str) -> tuple[str, Quota | None]:
    """`UpdateCase=50/100` (rate/burst), `UpdateCase=50` (burst = rate) or `UpdateCase=none`."""
    operation, sep, value = spec.partition("=")
    if not sep or operation not in DEFAULT_QUOTAS:
        known = ", ".join(sorted(DEFAULT_QUOTAS))
        raise ValueError(f"expected OPERATION=RATE[/BURST] or OPERATION=none with one of: {known}")
    if value.strip().lower() in ("none", "unlimited", "off"):
        return operation, None
    rate_text, _, burst_text = value.partition("/")
    try:
        rate_per_s = float(rate_text)
        burst = int(burst_text) if burst_text else max(1, round(rate_per_s))
        return operation, Quota(rate_per_s, burst)
    except ValueError as error:
        raise ValueError(f"bad quota {spec!r}: {error}") from None


def parse_credentials(spec: str) -> tuple[str, str]:
    """`ACCESS_KEY_ID:SECRET`."""
    key_id, sep, secret = spec.partition(":")
    if not sep or not key_id or not secret:
        raise ValueError("expected ACCESS_KEY_ID:SECRET_ACCESS_KEY")
    return key_id, secret
