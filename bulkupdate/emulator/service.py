"""The semantics of each emulated Connect Cases operation, over the state and building blocks of
`account`. Pure: no I/O, no sleeping. Requests arrive already shape-checked against the service
model; this module applies the rules the model cannot express.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from typing import Any

from bulkupdate.emulator.account import CasesAccount
from bulkupdate.emulator.batch import batch_update_case
from bulkupdate.emulator.errors import (
    ResourceNotFoundError,
    ServiceQuotaExceededError,
    ValidationError,
)
from bulkupdate.emulator.records import CaseRecord, FieldRecord, OptionRecord
from bulkupdate.emulator.search import matches

Params = dict[str, Any]
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


class CasesService(CasesAccount):
    """The wire operations over one emulated account, one handler per operation."""

    def _case_fields(
        self, case: CaseRecord, field_ids: Iterable[str], values: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        out = []
        for field_id in field_ids:
            value = self.case_value(case, field_id, values)
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
        """Cases as the search index shows them: with a lag, by their values of `lag_s` ago."""
        domain = self.domain(p["domainId"])
        term = p.get("searchTerm") or ""
        wanted = [f["id"] for f in p.get("fields", ())]
        now_s = self.wall_s()
        hits: list[tuple[CaseRecord, dict[str, Any]]] = []
        for case in domain.cases.values():
            values = self.index.values(domain.domain_id, case, now_s)
            if values is None:
                continue  # created after what the index has seen

            def value_of(c: CaseRecord, field_id: str, values: dict[str, Any] = values) -> Any:
                return self.case_value(c, field_id, values)

            if matches(case, p.get("filter"), term, value_of):
                hits.append((case, values))
        page, more = _page(hits, p, 25)
        items = [
            {
                "caseId": case.case_id,
                "templateId": case.template_id,
                "fields": self._case_fields(case, wanted, values),
                "tags": {},
            }
            for case, values in page
        ]
        return {"cases": items, "totalCount": len(hits), **more}

    def update_case(self, p: Params) -> Params:
        domain = self.domain(p["domainId"])
        case = self.edit_case(domain.domain_id, p["caseId"], p["fields"])
        self.updates.append(
            domain.domain_id, case.case_id, p["fields"], p.get("performedBy"), case.updated_s
        )
        return {}

    def edit_case(self, domain_id: str, case_id: str, fields: list[Params]) -> CaseRecord:
        """Set a case's fields under UpdateCase's rules. Alone (the admin view), it is an
        agent's edit in the Cases UI: not in the log of updates, as no job sent it."""
        domain = self.domain(domain_id)
        case = domain.cases.get(case_id)
        if case is None:
            raise ResourceNotFoundError("Case", case_id)
        checked = self.checked_values(domain, fields, domain.templates.get(case.template_id))
        self.set_values(domain_id, case, checked)
        return case

    def batch_update_case(self, p: Params) -> Params:
        return batch_update_case(self, p).response


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
    "BatchUpdateCase": CasesService.batch_update_case,  # the server calls it with its faults
}
