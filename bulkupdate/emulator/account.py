"""One emulated account's state (domains, the update log) and the building blocks that add and
look up domains, fields, templates and cases under the service's rules. Knows no wire operations.
Pure: no I/O, no sleeping; time comes from an injected wall clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from bulkupdate.emulator.errors import (
    ConflictError,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
    ValidationError,
)
from bulkupdate.emulator.index import SearchIndex
from bulkupdate.emulator.records import (
    FIELD_TYPES,
    READ_ONLY_FIELDS,
    SYSTEM_DATETIME_FIELDS,
    SYSTEM_FIELDS,
    SYSTEM_STATUS_OPTIONS,
    CaseRecord,
    DateTimeEncoding,
    DomainRecord,
    FieldRecord,
    OptionRecord,
    TemplateRecord,
    Union,
    check_value,
)
from bulkupdate.emulator.tokens import ClientTokens
from bulkupdate.emulator.updatelog import UpdateLog

__all__ = ["MAX_DOMAINS", "MAX_FIELDS_PER_DOMAIN", "CasesAccount"]

MAX_DOMAINS = 5
MAX_FIELDS_PER_DOMAIN = 500


class CasesAccount:
    """One emulated account and Region: its domains and the ordered log of applied updates."""

    def __init__(
        self,
        *,
        wall_s: Callable[[], float],
        datetime_encoding: DateTimeEncoding = DateTimeEncoding.ISO8601,
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        self.wall_s = wall_s
        self.datetime_encoding = datetime_encoding
        self.region = region
        self.account_id = account_id
        self.domains: dict[str, DomainRecord] = {}
        self.updates = UpdateLog()  # every case update applied, in apply order
        self.batch_tokens = ClientTokens()  # BatchUpdateCase's clientTokens, account-wide
        self.index = SearchIndex()  # what SearchCases reads (lagging behind writes, if set)

    # -- building blocks (also used for seeding) --------------------------------------------

    def add_domain(self, name: str, domain_id: str | None = None) -> DomainRecord:
        if len(self.domains) >= MAX_DOMAINS:
            raise ServiceQuotaExceededError(f"An account may have at most {MAX_DOMAINS} domains.")
        if any(d.name == name for d in self.domains.values()):
            raise ConflictError(f"A domain named {name!r} already exists.")
        domain_id = domain_id or str(uuid.uuid4())
        arn = f"arn:aws:cases:{self.region}:{self.account_id}:domain/{domain_id}"
        domain = DomainRecord(domain_id, name, arn, self.wall_s())
        self.domains[domain_id] = domain
        for field_id, field_name, field_type, multiline in SYSTEM_FIELDS:
            record = self.add_field(
                domain, field_name, field_type, field_id=field_id, is_multiline=multiline
            )
            record.namespace = "System"
        for option_name, option_value in SYSTEM_STATUS_OPTIONS:
            domain.fields["status"].options[option_value] = OptionRecord(option_name, option_value)
        return domain

    def add_field(
        self,
        domain: DomainRecord,
        name: str,
        field_type: str,
        *,
        field_id: str | None = None,
        description: str = "",
        is_multiline: bool = False,
    ) -> FieldRecord:
        if field_type not in FIELD_TYPES:
            raise ValidationError(f"Unknown field type {field_type!r}.")
        if len(domain.fields) >= MAX_FIELDS_PER_DOMAIN:
            raise ServiceQuotaExceededError(
                f"A domain may have at most {MAX_FIELDS_PER_DOMAIN} fields."
            )
        if any(f.name == name for f in domain.fields.values()):
            raise ConflictError(f"A field named {name!r} already exists.")
        field_id = field_id or str(uuid.uuid4())
        now_s = self.wall_s()
        record = FieldRecord(
            field_id,
            name,
            field_type,
            arn=f"{domain.arn}/field/{field_id}",
            description=description,
            is_multiline=is_multiline,
            created_s=now_s,
            modified_s=now_s,
        )
        domain.fields[field_id] = record
        return record

    def add_template(
        self,
        domain: DomainRecord,
        name: str,
        *,
        template_id: str | None = None,
        required_fields: Iterable[str] = (),
        status: str = "Active",
        description: str = "",
    ) -> TemplateRecord:
        if any(t.name == name for t in domain.templates.values()):
            raise ConflictError(f"A template named {name!r} already exists.")
        required = list(required_fields)
        for field_id in required:
            self._field(domain, field_id)
        template_id = template_id or str(uuid.uuid4())
        arn = f"{domain.arn}/template/{template_id}"
        template = TemplateRecord(template_id, name, arn, status, description, required)
        domain.templates[template_id] = template
        return template

    def add_case(
        self,
        domain: DomainRecord,
        template_id: str,
        values: list[dict[str, Any]],
        *,
        case_id: str | None = None,
    ) -> CaseRecord:
        template = domain.templates.get(template_id)
        if template is None:
            raise ResourceNotFoundError("Template", template_id)
        if template.status != "Active":
            raise ValidationError(f"Template {template_id} is not active.")
        checked = self.checked_values(domain, values, template)
        given = {field_id for field_id, value in checked.items() if "emptyValue" not in value}
        missing = [f for f in template.required_fields if f not in given]
        if missing:
            raise ValidationError(f"Required fields are missing: {', '.join(missing)}")
        checked = {k: v for k, v in checked.items() if "emptyValue" not in v}
        now_s = self.wall_s()
        case_id = case_id or str(uuid.uuid4())
        checked.setdefault("status", {"stringValue": "open"})
        checked["reference_number"] = {"stringValue": f"{len(domain.cases) + 1:08d}"}
        case = domain.cases[case_id] = CaseRecord(case_id, template_id, checked, now_s, now_s)
        self.index.changed(domain.domain_id, case, now_s)
        return case

    # -- lookups ---------------------------------------------------------------------------

    def domain(self, domain_id: str) -> DomainRecord:
        domain = self.domains.get(domain_id)
        if domain is None:
            raise ResourceNotFoundError("Domain", domain_id)
        return domain

    def _field(self, domain: DomainRecord, field_id: str) -> FieldRecord:
        record = domain.fields.get(field_id)
        if record is None:
            raise ValidationError(f"Field {field_id} does not exist in domain {domain.domain_id}.")
        return record

    def checked_values(
        self, domain: DomainRecord, values: list[dict[str, Any]], template: TemplateRecord | None
    ) -> dict[str, Union]:
        """`values` ({"id", "value"} items) checked for one case of `template`, by field id;
        ValidationError on the first problem."""
        checked: dict[str, Union] = {}
        for index, item in enumerate(values, start=1):
            field_id, value = item["id"], item["value"]
            path = f"fields.{index}.member.value"
            if field_id in checked:
                raise ValidationError(f"Field {field_id} appears more than once in the request.")
            if field_id in READ_ONLY_FIELDS:
                raise ValidationError(f"Field {field_id} is read-only.")
            record = self._field(domain, field_id)
            check_value(record, value, self.datetime_encoding, path)
            if "emptyValue" in value and template and field_id in template.required_fields:
                raise ValidationError(
                    f"Field {field_id} is required by template {template.template_id}"
                    " and cannot be set to emptyValue."
                )
            checked[field_id] = value
        return checked

    def apply_update(
        self,
        domain: DomainRecord,
        case: CaseRecord,
        checked: dict[str, Union],
        fields: list[dict[str, Any]],
        performed_by: dict[str, Any] | None,
        client_token: str | None = None,
    ) -> None:
        """Apply checked values to one case and log it (`client_token`: from a batch call)."""
        self.set_values(domain.domain_id, case, checked)
        self.updates.append(
            domain.domain_id, case.case_id, fields, performed_by, case.updated_s, client_token
        )

    def set_values(self, domain_id: str, case: CaseRecord, checked: dict[str, Union]) -> None:
        """Put checked values on a case (an empty value clears the field), and tell the search
        index; not logged."""
        self.index.changing(domain_id, case)
        for field_id, value in checked.items():
            if "emptyValue" in value:
                case.values.pop(field_id, None)
            else:
                case.values[field_id] = value
        case.updated_s = self.wall_s()
        self.index.changed(domain_id, case, case.updated_s)

    def case_value(
        self, case: CaseRecord, field_id: str, values: dict[str, Union] | None = None
    ) -> Union | None:
        """The case's value of a field; from `values` (what the search index shows) if given."""
        attribute = SYSTEM_DATETIME_FIELDS.get(field_id)
        if attribute is not None:
            return self.datetime_encoding.render(getattr(case, attribute))
        return (case.values if values is None else values).get(field_id)
