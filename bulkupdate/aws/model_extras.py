"""Builds the shipped `service-2.sdk-extras.json`: the operations a newer botocore model has and
the installed one lacks, with only the shapes the installed model lacks, documentation left out.

    python -m bulkupdate.aws.model_extras PATH/TO/connectcases/2022-10-03/service-2.json[.gz]

writes `bulkupdate/aws/data/connectcases/2022-10-03/service-2.sdk-extras.json`. Run by hand when
botocore publishes a change to the operation; `aws.model` decides at run time whether to use it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bulkupdate.aws.model import EXTRA_OPERATIONS, EXTRAS_FILE, installed_model

_DROPPED_KEYS = frozenset({"documentation", "documentationUrl"})


def undocumented(node: Any) -> Any:
    """`node` without documentation strings, at any depth."""
    if isinstance(node, dict):
        return {k: undocumented(v) for k, v in node.items() if k not in _DROPPED_KEYS}
    if isinstance(node, list):
        return [undocumented(v) for v in node]
    return node


def _shape_refs(node: Any) -> Iterator[str]:
    """Every shape name `node` refers to ({"shape": NAME} anywhere inside it)."""
    if isinstance(node, dict):
        name = node.get("shape")
        if isinstance(name, str):
            yield name
        for value in node.values():
            yield from _shape_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _shape_refs(value)


def needed_shapes(model: Mapping[str, Any], operations: Iterable[str]) -> list[str]:
    """The shapes the operations use, directly or through other shapes, in a stable order."""
    shapes = model["shapes"]
    seen: dict[str, None] = {}
    pending = [ref for op in operations for ref in _shape_refs(model["operations"][op])]
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen[name] = None
        pending.extend(_shape_refs(shapes[name]))
    return sorted(seen)


def build_extras(
    published: Mapping[str, Any],
    installed: Mapping[str, Any],
    operations: Iterable[str] = EXTRA_OPERATIONS,
) -> tuple[dict[str, Any], list[str]]:
    """The extras document, and the shapes both models have that differ (left as installed)."""
    wanted = [op for op in operations if op not in installed["operations"]]
    missing = [op for op in wanted if op not in published["operations"]]
    if missing:
        raise ValueError(f"the published model has no {', '.join(missing)}")
    added: dict[str, Any] = {}
    differing: list[str] = []
    for name in needed_shapes(published, wanted):
        shape = undocumented(published["shapes"][name])
        if name not in installed["shapes"]:
            added[name] = shape
        elif undocumented(installed["shapes"][name]) != shape:
            differing.append(name)
    merge = {
        "operations": {op: undocumented(published["operations"][op]) for op in wanted},
        "shapes": added,
    }
    return {"version": 1.0, "merge": merge}, differing


def _read_model(path: Path) -> dict[str, Any]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        model: dict[str, Any] = json.load(handle)
    return model


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bulkupdate.aws.model_extras")
    parser.add_argument("published", type=Path, help="a newer botocore's connectcases service-2")
    parser.add_argument("--out", type=Path, default=EXTRAS_FILE, help="where to write")
    args = parser.parse_args(argv)
    document, differing = build_extras(_read_model(args.published), installed_model())
    for name in differing:
        print(
            f"warning: shape {name} differs from the installed one; kept as installed",
            file=sys.stderr,
        )
    args.out.write_text(render(document), encoding="utf-8")
    merge = document["merge"]
    print(f"{args.out}: {len(merge['operations'])} operations, {len(merge['shapes'])} shapes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
