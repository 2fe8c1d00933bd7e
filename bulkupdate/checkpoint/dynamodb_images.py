"""The DynamoDB checkpoint's before-images as plain data: one item per case and field,

    img#<shard>#<gen>#<case id>#<field id>   case_id, field_id, before, after?, pending?
                                             (each value a field value union as JSON)

and the transaction items that record a commit's `ImageChange`s in them. Pure: no I/O.

A transaction may touch an item once, so a commit's changes of one field fold into one
update; `before` is set only where the item has none (if_not_exists), so the first stays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bulkupdate.checkpoint.dynamodb_items import TRANSACT_BYTES, TRANSACT_ITEMS
from bulkupdate.checkpoint.images import FieldImage, ImageChange, decode_value, encode_value
from bulkupdate.models import WireValue

__all__ = [
    "condition_check",
    "fits_with",
    "image_from_item",
    "image_prefix",
    "image_updates",
]


def image_prefix(shard: str, gen: str) -> str:
    return f"img#{shard}#{gen}#"


def _fold(
    changes: Sequence[ImageChange],
) -> dict[tuple[str, str], tuple[ImageChange, WireValue | None, WireValue | None]]:
    """Per field, in order of first change: (its first change, the last value accepted, the
    value sent after that, None when the last change was an accept)."""
    folded: dict[tuple[str, str], tuple[ImageChange, WireValue | None, WireValue | None]] = {}
    for change in changes:
        key = (change.case_id, change.field_id)
        first, accepted, _ = folded.get(key, (change, None, None))
        if change.applied:
            folded[key] = (first, change.value, None)
        else:
            folded[key] = (first, accepted, change.value)
    return folded


def image_updates(
    table: str, pk: str, shard: str, gen: str, changes: Sequence[ImageChange]
) -> list[dict[str, Any]]:
    """TransactWriteItems entries ({"Update": ...}) recording `changes`, one per field."""
    items = []
    for (case_id, field_id), (first, accepted, pending) in _fold(changes).items():
        values: dict[str, Any] = {
            ":case": {"S": case_id},
            ":field": {"S": field_id},
            ":before": {"S": encode_value(first.before)},
        }
        sets = ["case_id = :case", "field_id = :field", "#before = if_not_exists(#before, :before)"]
        names = {"#before": "before"}
        if accepted is not None:
            sets.append("#after = :after")
            values[":after"] = {"S": encode_value(accepted)}
            names["#after"] = "after"
        if pending is not None:
            sets.append("pending = :pending")
            values[":pending"] = {"S": encode_value(pending)}
        expression = "SET " + ", ".join(sets) + (" REMOVE pending" if pending is None else "")
        key = {"pk": {"S": pk}, "sk": {"S": f"{image_prefix(shard, gen)}{case_id}#{field_id}"}}
        update = {
            "TableName": table,
            "Key": key,
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        items.append({"Update": update})
    return items


def fits_with(pages: Sequence[tuple[int, bytes]], updates: Sequence[Any]) -> bool:
    """Whether a commit's first transaction (its meta update and failure pages) holds its image
    updates too: 100 items, 4 MB."""
    if len(pages) + len(updates) + 1 > TRANSACT_ITEMS:
        return False
    size = sum(len(page) for _, page in pages) + sum(len(json.dumps(u)) for u in updates)
    return size <= TRANSACT_BYTES


def condition_check(table: str, key: Mapping[str, Any], owner: str, version: int) -> dict[str, Any]:
    """A transaction item that holds only while `owner` holds the meta item `key` at `version`:
    image writes ahead of a commit's own are refused to a run that lost its lease."""
    return {
        "ConditionCheck": {
            "TableName": table,
            "Key": key,
            "ConditionExpression": "#lease_owner = :me AND #version = :v",
            "ExpressionAttributeNames": {"#lease_owner": "lease_owner", "#version": "version"},
            "ExpressionAttributeValues": {":me": {"S": owner}, ":v": {"N": str(version)}},
        }
    }


def image_from_item(item: Mapping[str, Any]) -> FieldImage:
    def value(name: str) -> Any:
        return decode_value(item[name]["S"]) if name in item else None

    case_id, field_id = item["case_id"]["S"], item["field_id"]["S"]
    return FieldImage(case_id, field_id, value("before"), value("after"), value("pending"))
