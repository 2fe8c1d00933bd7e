"""`status` finds every shard's SQLite checkpoint of a job, and only that job's."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkupdate.checkpoint.locations import shard_files
from bulkupdate.errors import ConfigError


def touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"")


def test_the_unsharded_name_or_any_shard_finds_every_shard_of_the_job(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "crm[1].shard-1-of-2.checkpoint.sqlite",
        "crm[1].shard-0-of-2.checkpoint.sqlite",
        "crm[1].shard-0-of-2.checkpoint.sqlite-wal",
        "crm.shard-0-of-2.checkpoint.sqlite",  # another job
    )
    expected = [
        ("shard-0-of-2", str(tmp_path / "crm[1].shard-0-of-2.checkpoint.sqlite")),
        ("shard-1-of-2", str(tmp_path / "crm[1].shard-1-of-2.checkpoint.sqlite")),
    ]
    assert shard_files(str(tmp_path / "crm[1].checkpoint.sqlite")) == expected
    assert shard_files(expected[1][1]) == expected


def test_a_checkpoint_name_without_a_suffix_is_found(tmp_path: Path) -> None:
    touch(tmp_path, "ckpt.shard-0-of-2", "ckpt.shard-1-of-2")
    assert [label for label, _ in shard_files(str(tmp_path / "ckpt"))] == [
        "shard-0-of-2",
        "shard-1-of-2",
    ]


def test_an_unsharded_job_has_no_shard_files(tmp_path: Path) -> None:
    touch(tmp_path, "crm.checkpoint.sqlite")
    assert shard_files(str(tmp_path / "crm.checkpoint.sqlite")) == []


def test_shards_of_two_counts_are_refused_unless_one_shard_is_named(tmp_path: Path) -> None:
    touch(tmp_path, "crm.shard-0-of-2.checkpoint.sqlite", "crm.shard-0-of-3.checkpoint.sqlite")
    with pytest.raises(ConfigError, match="2 and 3-shard runs"):
        shard_files(str(tmp_path / "crm.checkpoint.sqlite"))
    named = shard_files(str(tmp_path / "crm.shard-0-of-3.checkpoint.sqlite"))
    assert [label for label, _ in named] == ["shard-0-of-3"]
