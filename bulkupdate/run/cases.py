"""What the engine needs from Connect Cases, as a Protocol.

No botocore here: `aws.client` implements the Protocol for real; errors arrive as CallError.
A working fake for tests lives in `tests/fakes/cases.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bulkupdate.fields.schema import FieldUpdate
from bulkupdate.lookup.resolver import CaseSearch
from bulkupdate.models import BatchOutcome, Field, FieldOption, WireValue


class CasesApi(CaseSearch, Protocol):
    """UpdateCase and the reads a run makes; SearchCases (`CaseSearch`) for --match-field."""

    async def update_case(
        self, case_id: str, fields: Sequence[FieldUpdate], performed_by: dict[str, str] | None
    ) -> None: ...

    async def batch_update_case(
        self,
        case_ids: Sequence[str],
        fields: Sequence[FieldUpdate],
        *,
        title: str | None = None,
        status: str | None = None,
        customer_id: str | None = None,
        performed_by: dict[str, str] | None,
        client_token: str,
    ) -> BatchOutcome:
        """One BatchUpdateCase: the same patch on 1..MAX_CASES_PER_BATCH distinct cases.

        `fields` holds field ids, never names, and not title/status/customer_id (their ids):
        those go in the keyword arguments. Raises ValueError on such a caller's bug; a refused
        call raises CallError like update_case, with `batch_refusal` set when its kind is ROW
        (nothing was applied). Otherwise every listed case is in the outcome's `succeeded` or
        `failed`. The same token and request within the service's window answers the first
        call's outcome again (failures included) without applying anything, so a retry of some
        cases is a new request with a new token; the same token with another request is refused
        (BatchRefusal.TOKEN_REUSED).
        """
        ...

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
