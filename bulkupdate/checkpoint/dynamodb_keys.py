"""The DynamoDB store's items of match keys (`--match-field`): what searches found, one item per
write, `keys#<shard>#<gen>#<token>` holding zlib of JSON [[field id, key, [case ids]], ...].
A key's first answer counts when one is written twice. Read back with one Query at open.

Pure: builds and reads items; the store writes them.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bulkupdate.models import KeyResolution


def keys_prefix(shard: str, gen: str | None = None) -> str:
    return f"keys#{shard}#" if gen is None else f"keys#{shard}#{gen}#"


def keys_item(
    pk: str, shard: str, gen: str, token: str, resolutions: Sequence[KeyResolution]
) -> dict[str, Any]:
    rows = [[r.field_id, r.key, list(r.case_ids)] for r in resolutions]
    data = zlib.compress(json.dumps(rows, separators=(",", ":")).encode())
    return {"pk": {"S": pk}, "sk": {"S": keys_prefix(shard, gen) + token}, "keys": {"B": data}}


def read_keys(items: Iterable[Mapping[str, Any]], field_id: str) -> dict[str, tuple[str, ...]]:
    """Every key of `field_id` the items hold, each with its first recorded answer."""
    found: dict[str, tuple[str, ...]] = {}
    for item in items:
        for field, key, case_ids in json.loads(zlib.decompress(bytes(item["keys"]["B"]))):
            if field == field_id:
                found.setdefault(key, tuple(case_ids))
    return found
