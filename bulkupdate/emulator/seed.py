"""Fills a fresh emulated account: from a seed JSON document (format in the README) and/or the
built-in demo domain with a field of every type and N cases.

Builds through CasesService's own building blocks, so seeded data obeys the service's rules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bulkupdate.emulator.service import CasesService

DEMO_DOMAIN_ID = "demo"
DEMO_TEMPLATE_ID = "demo-template"
# (id, name, type, multi-line); one field of every type.
DEMO_FIELDS = (
    ("priority", "Priority", "SingleSelect", False),
    ("order_total", "Order total", "Number", False),
    ("vip", "VIP", "Boolean", False),
    ("due_date", "Due date", "DateTime", False),
    ("crm_url", "CRM link", "Url", False),
    ("owner", "Owner", "User", False),
    ("notes", "Notes", "Text", True),
    ("account_code", "Account code", "Text", False),
    ("legacy_ticket", "Legacy ticket", "Text", False),  # another system's id: --match-field
)
DEMO_PRIORITY_OPTIONS = (
    {"name": "Low", "value": "low", "active": True},
    {"name": "Medium", "value": "medium", "active": True},
    {"name": "High", "value": "high", "active": True},
    {"name": "Urgent", "value": "urgent", "active": True},
    {"name": "Legacy", "value": "legacy", "active": False},
)


def demo_case_id(index: int) -> str:
    return f"case-{index:07d}"


def demo_legacy_ticket(index: int) -> str:
    """The legacy CRM's ticket number of demo case `index` (jobs/legacy-crm-export.csv)."""
    return f"CRM-{70000 + index}"


def demo_document(cases: int) -> dict[str, Any]:
    return {
        "domains": [
            {
                "domainId": DEMO_DOMAIN_ID,
                "name": "demo",
                "fields": [
                    {
                        "id": field_id,
                        "name": name,
                        "type": field_type,
                        "multiline": multiline,
                        **(
                            {"options": list(DEMO_PRIORITY_OPTIONS)}
                            if field_id == "priority"
                            else {}
                        ),
                    }
                    for field_id, name, field_type, multiline in DEMO_FIELDS
                ],
                "templates": [{"id": DEMO_TEMPLATE_ID, "name": "Demo"}],
                "cases": [
                    {
                        "id": demo_case_id(index),
                        "template": DEMO_TEMPLATE_ID,
                        "fields": {
                            "title": f"Demo case {index}",
                            "priority": "low",
                            "legacy_ticket": demo_legacy_ticket(index),
                        },
                    }
                    for index in range(1, cases + 1)
                ],
            }
        ]
    }


def load_document(service: CasesService, document: dict[str, Any]) -> None:
    """Seed `service` from a document; values use the API's union spelling or plain JSON."""
    for raw_domain in document.get("domains", ()):
        domain = service.add_domain(raw_domain["name"], raw_domain.get("domainId"))
        for raw_field in raw_domain.get("fields", ()):
            record = service.add_field(
                domain,
                raw_field["name"],
                raw_field["type"],
                field_id=raw_field.get("id"),
                description=raw_field.get("description", ""),
                is_multiline=bool(raw_field.get("multiline", False)),
            )
            for option in raw_field.get("options", ()):
                option = {"active": True, **option}
                service.batch_put_field_options(
                    {"domainId": domain.domain_id, "fieldId": record.field_id, "options": [option]}
                )
        for raw_template in raw_domain.get("templates", ()):
            service.add_template(
                domain,
                raw_template["name"],
                template_id=raw_template.get("id"),
                required_fields=raw_template.get("requiredFields", ()),
            )
        for raw_case in raw_domain.get("cases", ()):
            values = [
                {"id": field_id, "value": _union(service, domain.fields[field_id].type, value)}
                for field_id, value in raw_case.get("fields", {}).items()
            ]
            service.add_case(domain, raw_case["template"], values, case_id=raw_case.get("id"))


def _union(service: CasesService, field_type: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value  # already a FieldValueUnion
    if field_type == "Number":
        return {"doubleValue": float(value)}
    if field_type == "Boolean":
        return {"booleanValue": bool(value)}
    if field_type == "User":
        return {"userArnValue": value}
    if field_type == "DateTime" and isinstance(value, int | float):
        return service.datetime_encoding.render(float(value))
    return {"stringValue": value}


def apply(service: CasesService, seed_path: Path | None, demo_cases: int) -> None:
    if seed_path is not None:
        with seed_path.open(encoding="utf-8") as handle:
            load_document(service, json.load(handle))
    if demo_cases > 0:
        load_document(service, demo_document(demo_cases))
