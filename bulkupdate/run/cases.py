"""What the engine needs from Connect Cases, as a Protocol.

No botocore here: `aws.client` implements the Protocol for real; errors arrive as CallError.
A working fake for tests lives in `tests/fakes/cases.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bulkupdate.fields.schema import FieldUpdate
from bulkupdate.models import Field, FieldOption, WireValue


class CasesApi(Protocol):
    async def update_case(
        self, case_id: str, fields: Sequence[FieldUpdate], performed_by: dict[str, str] | None
    ) -> None: ...

    async def list_fields(self) -> list[Field]:
        """Every field of the domain (all pages), options not yet filled in."""
        ...

    async def list_field_options(self, field_id: str) -> tuple[FieldOption, ...]:
        """Every option of a SingleSelect field (all pages)."""
        ...

    async def get_case(self, case_id: str, field_ids: Sequence[str]) -> dict[str, WireValue]:
        """GetCase at start-up, paced at its default quota by the client itself."""
        ...

    async def read_fields(self, case_id: str, field_ids: Sequence[str]) -> dict[str, WireValue]:
        """GetCase of a case's current values (every page), paced by the caller (its gate).
        A field without a value is absent."""
        ...
