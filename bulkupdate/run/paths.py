"""The files a run writes (the checkpoint and the files SQLite and its lock keep beside it, the
failures file, the summary), the rule that none of them is the input or another of them, and
the rule that each can be written: its folder is writable, or can be created (the run creates
a missing folder when it first writes there, as it always did for `--state-dir`).

Resolves paths (links, `..`, the working folder) and asks the file system what it allows, but
opens, creates and writes nothing.
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
DRY_RUN_FAILURES = "the dry run's failures file"


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


def refuse_unwritable(config: RunConfig) -> None:
    """ConfigError naming the flag when an output's folder is not writable and cannot be
    created, or an output is a folder or a file that cannot be written: checked before
    anything is sent, so a run never applies every row and then cannot say what it did."""
    checked: set[str] = set()
    for flag, location, what in _outputs(config):
        if config.dry_run and what != DRY_RUN_FAILURES:
            continue  # a dry run writes only its own failures file
        if is_s3(location) or location in checked:
            continue
        checked.add(location)
        problem = _unwritable(location, in_place=flag == "--checkpoint")
        if problem is None:
            continue
        if config.state_dir and _same_folder(location, config.state_dir):
            flag, fix = "--state-dir", "make it writable (mount the volume read-write)"
        else:
            fix = f"give {flag} a writable path"
            if flag != "--summary" and not config.state_dir:
                fix += " or --state-dir a writable folder"
        raise ConfigError(flag, f"{what} {location} cannot be written: {problem}; {fix}")


def _unwritable(location: str, *, in_place: bool) -> str | None:
    """Why `location` cannot be written (or the folder it needs created), in words; None when
    it can be. A file written `in_place` (SQLite's) must itself be writable; the others are
    replaced whole (see `report.atomic`), which takes only a writable folder."""
    path = os.path.abspath(location)
    folder = os.path.dirname(path)
    existing = folder
    while not os.path.lexists(existing):  # the nearest folder there is: the rest is created
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == folder:
            return f"its folder {folder} is not writable"
        return f"its folder {folder} cannot be created: {existing} is not writable"
    if os.path.isdir(path):
        return "it is a folder, not a file"
    if in_place and os.path.lexists(path) and not os.access(path, os.W_OK):
        return "the file is not writable"
    return None


def _same_folder(location: str, folder: str) -> bool:
    return os.path.dirname(os.path.abspath(location)) == os.path.abspath(folder)


def _outputs(config: RunConfig) -> Iterator[tuple[str, str, str]]:
    """(flag, location, what it is) of every local file or S3 object the run may write."""
    if not config.checkpoint.startswith(DYNAMODB):
        yield "--checkpoint", config.checkpoint, "the checkpoint"
        for suffix in CHECKPOINT_COMPANIONS:
            yield "--checkpoint", config.checkpoint + suffix, "the file beside the checkpoint"
    yield "--failures", config.failures, "the failures file"
    if config.dry_run:
        yield "--failures", dry_run_path(config.failures), DRY_RUN_FAILURES
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
