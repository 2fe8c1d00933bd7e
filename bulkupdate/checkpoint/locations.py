"""Where checkpoints live: `dynamodb://TABLE` or a SQLite file, and the files beside it that
hold each shard's checkpoint of a sharded job.

Names and finds checkpoints; opens none. Reads only folder listings.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

from bulkupdate.checkpoint.store import DYNAMODB
from bulkupdate.errors import ConfigError

_SHARD = re.compile(r"\.shard-(\d+)-of-(\d+)(?=\.|$)")


def dynamodb_table(checkpoint: str) -> str:
    """`dynamodb://TABLE` -> TABLE; ConfigError for anything else after the scheme."""
    table = checkpoint.removeprefix(DYNAMODB)
    if not table or "/" in table:
        raise ConfigError("--checkpoint", f"must be dynamodb://TABLE, not {checkpoint!r}")
    return table


def shard_files(checkpoint: str) -> list[tuple[str, str]]:
    """(shard label, path) of every shard's checkpoint beside `checkpoint`, which may be one
    of them or the job's unsharded name; empty when the job is not sharded. Refuses a folder
    holding the shards of two different COUNTs: their totals would not add up to one job."""
    files = _shard_candidates(checkpoint)
    counts = sorted({count for count, _, _ in files})
    if len(counts) > 1:
        stem = Path(_SHARD.sub("", checkpoint, count=1)).name.partition(".")[0]
        message = (
            f"holds shards of {' and '.join(map(str, counts))}-shard runs of one job; "
            "remove the checkpoints of the COUNT no longer used"
        )
        raise ConfigError("--checkpoint", f"{Path(checkpoint).parent}/{stem}.shard-*: {message}")
    return [(f"shard-{index}-of-{count}", str(p)) for count, index, p in sorted(files)]


def _shard_candidates(checkpoint: str) -> list[tuple[int, int, Path]]:
    """(count, index, path) of the shard checkpoints beside `checkpoint` (see shard_files)."""
    path = Path(checkpoint)
    found = _SHARD.search(path.name)
    if found:
        stem, rest = path.name[: found.start()], path.name[found.end() :]
    else:
        dot = path.name.find(".")
        stem, rest = (path.name, "") if dot < 0 else (path.name[:dot], path.name[dot:])
    pattern = re.compile(re.escape(stem) + _SHARD.pattern + re.escape(rest) + "$")
    files = []
    for candidate in path.parent.glob(glob.escape(stem) + ".shard-*"):
        match = pattern.fullmatch(candidate.name)
        if match and (not found or match.group(2) == found.group(2)):
            files.append((int(match.group(2)), int(match.group(1)), candidate))
    return files


def file_counts(checkpoint: str) -> set[int]:
    """How many shards the SQLite checkpoints beside `checkpoint` were made with (1: the
    unsharded file); empty when there are none yet."""
    base = _SHARD.sub("", checkpoint, count=1)
    counts = {count for count, _, _ in _shard_candidates(base)}
    return counts | ({1} if Path(base).is_file() else set())
