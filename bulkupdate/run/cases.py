"""What the engine needs from Connect Cases, as a Protocol.

No botocore here: `aws.client` implements the Protocol for real; errors arrive as CallError.
A working fake for tests lives in `tests/fakes/cases.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bulkupdate.fields.schema import FieldUpdate
from bulkupdate.lookup.resolver import CaseSearch
from bulkupdate.models import Field, FieldOption, WireValue


class CasesApi(CaseSearch, Protocol):
    """UpdateCase and the reads a run makes; SearchCases (`CaseSearch`) for --match-field."""

    async def update_case(
        self, case_id: str, fields: Sequence[FieldUpdate], performed_by: dict[str, str] | None
    ) -> None: ...

    async def list_fields(self) -> list[Field]:
        """Every field of the domain (all pages), options not yet filled in."""
        ...

    async def list_field_options(self, field_id: str) -> tuple[FieldOption, ...]:
        """Every option of a SingleSelect field (all pages)."""
        ...

    async def get_case(self, case_id: str, field_ids: Sequence[str]) -> dict[str, WireValue]: ...
