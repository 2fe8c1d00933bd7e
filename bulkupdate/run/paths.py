"""The files a run writes (the checkpoint and the files SQLite and its lock keep beside it, the
failures file, the summary) and the rule that none of them is the input or another of them.

Resolves paths (links, `..`, the working folder) but opens, creates and writes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from bulkupdate.aws.s3 import is_s3
from bulkupdate.checkpoint.store import DYNAMODB
from bulkupdate.config import RunConfig
from bulkupdate.errors import ConfigError
from bulkupdate.run.dryrun import dry_run_path

# Files a SQLite checkpoint keeps beside itself: its WAL and shared memory, a rollback journal,
# the run lock, and the copy a new checkpoint is built in.
CHECKPOINT_COMPANIONS = ("-wal", "-shm", "-journal", ".lock", ".new", ".new-journal")


def refuse_overwrites(config: RunConfig) -> None:
    """ConfigError naming the flag when a file the run would write is its input, or another
    file it writes: checked before anything is sent or written."""
    written: list[tuple[str, str, str]] = [("--input", config.input, "the input")]
    for flag, location, what in _outputs(config):
        for other_flag, other, other_what in written:
            if _same(location, other):
                clash = (
                    "the input: the run would overwrite it"
                    if other_flag == "--input"
                    else f"also {other_what} ({other_flag}): one would overwrite the other"
                )
                raise ConfigError(flag, f"{what} {location} is {clash}; choose another path")
        written.append((flag, location, what))


def _outputs(config: RunConfig) -> Iterator[tuple[str, str, str]]:
    """(flag, location, what it is) of every local file or S3 object the run may write."""
    if not config.checkpoint.startswith(DYNAMODB):
        yield "--checkpoint", config.checkpoint, "the checkpoint"
        for suffix in CHECKPOINT_COMPANIONS:
            yield "--checkpoint", config.checkpoint + suffix, "the file beside the checkpoint"
    yield "--failures", config.failures, "the failures file"
    if config.dry_run:
        yield "--failures", dry_run_path(config.failures), "the dry run's failures file"
    if config.summary:
        yield "--summary", config.summary, "the summary"


def _same(one: str, other: str) -> bool:
    if one == "-" or other == "-":
        return False  # stdin is never written
    if is_s3(one) or is_s3(other):
        return one == other
    if os.path.realpath(one) == os.path.realpath(other):
        return True
    try:
        return os.path.samefile(one, other)  # hard links
    except OSError:  # one of them does not exist (yet): realpath said all there is
        return False
