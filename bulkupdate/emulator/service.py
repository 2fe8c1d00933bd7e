"""The semantics of each emulated Connect Cases operation over in-memory domains.

Pure: no I/O, no sleeping; time comes from an injected wall clock. Requests arrive already
shape-checked against the service model; this module applies the rules the model cannot express.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from bulkupdate.emulator.errors import (
    ConflictError,
    ResourceNotFoundError,
    ServiceQuotaExceededError,
    ValidationError,
)
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
from bulkupdate.emulator.search import matches
from bulkupdate.emulator.updatelog import UpdateLog

Params = dict[str, Any]
MAX_DOMAINS = 5
MAX_FIELDS_PER_DOMAIN = 500
MAX_OPTIONS_PER_FIELD = 500


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        kind, _, number = text.partition(":")
        if kind == "offset" and number.isdigit():
            return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ValidationError("The nextToken is not valid.")


def _page(items: list[Any], params: Params, default_size: int) -> tuple[list[Any], dict[str, str]]:
    start = _decode_token(params.get("nextToken"))
    size = params.get("maxResults") or default_size
    chunk = items[start : start + size]
    more = {"nextToken": _encode_token(start + size)} if start + size < len(items) else {}
    return chunk, more


class CasesService:
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
        self.updates = UpdateLog()  # every applied UpdateCase, in apply order

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
        checked = self._checked_values(domain, values, template)
        given = {field_id for field_id, value in checked.items() if "emptyValue" not in value}
        missing = [f for f in template.required_fields if f not in given]
        if missing:
            raise ValidationError(f"Required fields are missing: {', '.join(missing)}")
        checked = {k: v for k, v in checked.items() if "emptyValue" not in v}
        now_s = self.wall_s()
        case_id = case_id or str(uuid.uuid4())
        checked.setdefault("status", {"stringValue": "open"})
        checked["reference_number"] = {"stringValue": f"{len(domain.cases) + 1:08d}"}
        domain.cases[case_id] = CaseRecord(case_id, template_id, checked, now_s, now_s)
        return domain.cases[case_id]

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

    def _checked_values(
        self, domain: DomainRecord, values: list[dict[str, Any]], template: TemplateRecord | None
    ) -> dict[str, Union]:
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

    def case_value(self, case: CaseRecord, field_id: str) -> Union | None:
        attribute = SYSTEM_DATETIME_FIELDS.get(field_id)
        if attribute is not None:
            return self.datetime_encoding.render(getattr(case, attribute))
        return case.values.get(field_id)

    def _case_fields(self, case: CaseRecord, field_ids: Iterable[str]) -> list[dict[str, Any]]:
        out = []
        for field_id in field_ids:
            value = self.case_value(case, field_id)
            if value is not None:
                out.append({"id": field_id, "value": value})
        return out

    # -- operations ------------------------------------------------------------------------

    def create_domain(self, p: Params) -> Params:
        domain = self.add_domain(p["name"])
        return {"domainId": domain.domain_id, "domainArn": domain.arn, "domainStatus": "Active"}

    def get_domain(self, p: Params) -> Params:
        domain = self.domain(p["domainId"])
        return {
            "domainId": domain.domain_id,
            "domainArn": domain.arn,
            "name": domain.name,
            "createdTime": domain.created_s,
            "domainStatus": "Active",
            "tags": {},
        }

    def list_domains(self, p: Params) -> Params:
        page, more = _page(list(self.domains.values()), p, 10)
        summaries = [{"domainId": d.domain_id, "domainArn": d.arn, "name": d.name} for d in page]
        return {"domains": summaries, **more}

    def create_field(self, p: Params) -> Params:
        domain = self.domain(p["domainId"])
        text = (p.get("attributes") or {}).get("text")
        if text is not None and p["type"] != "Text":
            raise ValidationError("Text attributes apply to Text fields only.")
        record = self.add_field(
            domain,
            p["name"],
            p["type"],
            description=p.get("description", ""),
            is_multiline=bool(text and text.get("isMultiline")),
        )
        return {"fieldId": record.field_id, "fieldArn": record.arn}

    def list_fields(self, p: Params) -> Params:
        page, more = _page(list(self.domain(p["domainId"]).fields.values()), p, 100)
        return {"fields": [_field_summary(f) for f in page], **more}

    def batch_get_field(self, p: Params) -> Params:
        domain = self.domain(p["domainId"])
        found, errors = [], []
        for item in p["fields"]:
            record = domain.fields.get(item["id"])
            if record is None:
                errors.append({"id": item["id"], "errorCode": "NotFound", "message": "Not found"})
                continue
            detail = _field_summary(record)
            detail.update(
                description=record.description,
                tags={},
                deleted=False,
                createdTime=record.created_s,
                lastModifiedTime=record.modified_s,
            )
            found.append(detail)
        return {"fields": found, "errors": errors}

    def batch_put_field_options(self, p: Params) -> Params:
        domain = self.domain(p["domainId"])
        record = domain.fields.get(p["fieldId"])
        if record is None:
            raise ResourceNotFoundError("Field", p["fieldId"])
        if record.type != "SingleSelect":
            raise ValidationError(f"Field {record.field_id} is not a SingleSelect field.")
        new_values = {o["value"] for o in p["options"]} - record.options.keys()
        if len(record.options) + len(new_values) > MAX_OPTIONS_PER_FIELD:
            raise ServiceQuotaExceededError(
                f"A field may have at most {MAX_OPTIONS_PER_FIELD} options."
            )
        for option in p["options"]:
            value = option["value"]
            record.options[value] = OptionRecord(option["name"], value, bool(option["active"]))
        record.modified_s = self.wall_s()
        return {"errors": []}

    def list_field_options(self, p: Params) -> Params:
        domain = self.domain(p["domainId"])
        record = domain.fields.get(p["fieldId"])
        if record is None:
            raise ResourceNotFoundError("Field", p["fieldId"])
        options = list(record.options.values())
        wanted = p.get("values")
        if wanted:
            options = [o for o in options if o.value in wanted]
        page, more = _page(options, p, 50)
        listed = [{"name": o.name, "value": o.value, "active": o.active} for o in page]
        return {"options": listed, **more}

    def create_template(self, p: Params) -> Params:
        domain = self.domain(p["domainId"])
        template = self.add_template(
            domain,
            p["name"],
            required_fields=[r["fieldId"] for r in p.get("requiredFields", ())],
            status=p.get("status", "Active"),
            description=p.get("description", ""),
        )
        return {"templateId": template.template_id, "templateArn": template.arn}

    def list_templates(self, p: Params) -> Params:
        statuses = set(p.get("status") or ("Active", "Inactive"))
        domain = self.domain(p["domainId"])
        templates = [t for t in domain.templates.values() if t.status in statuses]
        page, more = _page(templates, p, 100)
        summaries = [
            {"templateId": t.template_id, "templateArn": t.arn, "name": t.name, "status": t.status}
            for t in page
        ]
        return {"templates": summaries, **more}

    def create_case(self, p: Params) -> Params:
        domain = self.domain(p["domainId"])
        token = p.get("clientToken")
        if token and token in domain.client_tokens:
            case_id = domain.client_tokens[token]
        else:
            case_id = self.add_case(domain, p["templateId"], p["fields"]).case_id
            if token:
                domain.client_tokens[token] = case_id
        return {"caseId": case_id, "caseArn": f"{domain.arn}/case/{case_id}"}

    def get_case(self, p: Params) -> Params:
        domain = self.domain(p["domainId"])
        case = domain.cases.get(p["caseId"])
        if case is None:
            raise ResourceNotFoundError("Case", p["caseId"])
        fields = self._case_fields(case, (f["id"] for f in p["fields"]))
        return {"fields": fields, "templateId": case.template_id, "tags": {}}

    def search_cases(self, p: Params) -> Params:
        domain = self.domain(p["domainId"])
        term = p.get("searchTerm") or ""
        wanted = [f["id"] for f in p.get("fields", ())]
        hits = [
            case
            for case in domain.cases.values()
            if matches(case, p.get("filter"), term, self.case_value)
        ]
        page, more = _page(hits, p, 25)
        items = [
            {
                "caseId": case.case_id,
                "templateId": case.template_id,
                "fields": self._case_fields(case, wanted),
                "tags": {},
            }
            for case in page
        ]
        return {"cases": items, "totalCount": len(hits), **more}

    def update_case(self, p: Params) -> Params:
        domain = self.domain(p["domainId"])
        case = domain.cases.get(p["caseId"])
        if case is None:
            raise ResourceNotFoundError("Case", p["caseId"])
        checked = self._checked_values(domain, p["fields"], domain.templates.get(case.template_id))
        for field_id, value in checked.items():
            if "emptyValue" in value:
                case.values.pop(field_id, None)
            else:
                case.values[field_id] = value
        case.updated_s = self.wall_s()
        self.updates.append(
            domain.domain_id, case.case_id, p["fields"], p.get("performedBy"), case.updated_s
        )
        return {}


def _field_summary(record: FieldRecord) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "fieldId": record.field_id,
        "fieldArn": record.arn,
        "name": record.name,
        "type": record.type,
        "namespace": record.namespace,
    }
    attributes = record.attributes()
    if attributes is not None:
        summary["attributes"] = attributes
    return summary


# Operation name -> handler. The server dispatches through this table.
OPERATIONS: dict[str, Callable[[CasesService, Params], Params]] = {
    "CreateDomain": CasesService.create_domain,
    "GetDomain": CasesService.get_domain,
    "ListDomains": CasesService.list_domains,
    "CreateField": CasesService.create_field,
    "ListFields": CasesService.list_fields,
    "BatchGetField": CasesService.batch_get_field,
    "BatchPutFieldOptions": CasesService.batch_put_field_options,
    "ListFieldOptions": CasesService.list_field_options,
    "CreateTemplate": CasesService.create_template,
    "ListTemplates": CasesService.list_templates,
    "CreateCase": CasesService.create_case,
    "GetCase": CasesService.get_case,
    "SearchCases": CasesService.search_cases,
    "UpdateCase": CasesService.update_case,
}
