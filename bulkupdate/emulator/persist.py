"""Saves and restores the whole emulated account as one JSON file, so a rehearsal survives a
restart. Writes atomically (temporary file, then rename).

Owns file I/O of the state only; never called per request.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from bulkupdate.emulator.records import (
    CaseRecord,
    DomainRecord,
    FieldRecord,
    OptionRecord,
    TemplateRecord,
)
from bulkupdate.emulator.service import CasesService

FORMAT_VERSION = 1


def snapshot(service: CasesService) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "domains": [dataclasses.asdict(domain) for domain in service.domains.values()],
        "updates": list(service.updates),
        "batch_tokens": service.batch_tokens.dump(),
    }


def restore(service: CasesService, document: dict[str, Any]) -> None:
    if document.get("format") != FORMAT_VERSION:
        raise ValueError(f"unsupported emulator state format {document.get('format')!r}")
    service.domains.clear()
    for raw in document["domains"]:
        fields = {}
        for field_id, raw_field in raw["fields"].items():
            options = {v: OptionRecord(**o) for v, o in raw_field.pop("options").items()}
            fields[field_id] = FieldRecord(**raw_field, options=options)
        domain = DomainRecord(
            raw["domain_id"],
            raw["name"],
            raw["arn"],
            raw["created_s"],
            fields=fields,
            templates={k: TemplateRecord(**t) for k, t in raw["templates"].items()},
            cases={k: CaseRecord(**c) for k, c in raw["cases"].items()},
            client_tokens=raw["client_tokens"],
        )
        service.domains[domain.domain_id] = domain
    service.updates.clear()
    service.updates.extend(document["updates"])
    service.batch_tokens.load(document.get("batch_tokens", ()))  # absent before BatchUpdateCase


def save(service: CasesService, path: Path) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(snapshot(service), handle)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def load(service: CasesService, path: Path) -> None:
    with path.open(encoding="utf-8") as handle:
        restore(service, json.load(handle))
