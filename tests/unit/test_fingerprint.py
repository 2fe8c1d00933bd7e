"""Naming an input: every byte of a file counts, the older size-and-first-MiB fingerprint is still
recognised, and a change is described in words."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bulkupdate.input.fingerprint import (
    changed_since,
    fingerprint_file,
    is_legacy_file_fingerprint,
    legacy_fingerprint_file,
)

MIB = 1 << 20


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_a_same_size_edit_past_the_first_mib_changes_a_files_fingerprint(tmp_path: Path) -> None:
    data = bytearray(b"case_id,order_total\n" + b"case-0000001,1000\n" * (MIB // 16))
    assert len(data) > MIB + 100_000
    path = write(tmp_path / "in.csv", bytes(data))
    before = fingerprint_file(path)
    data[-3:-1] = b"99"  # the last row's value, past the first MiB
    write(tmp_path / "in.csv", bytes(data))

    assert fingerprint_file(path) != before


def test_the_legacy_fingerprint_is_the_size_and_a_hash_of_the_first_mib(tmp_path: Path) -> None:
    data = b"x" * (MIB + 10)
    path = write(tmp_path / "in.csv", data)
    head = hashlib.sha256(data[:MIB]).hexdigest()[:32]  # the formula older checkpoints hold

    assert legacy_fingerprint_file(path) == f"size={MIB + 10};head={head}"
    assert is_legacy_file_fingerprint(legacy_fingerprint_file(path))
    assert not is_legacy_file_fingerprint(fingerprint_file(path))
    assert not is_legacy_file_fingerprint("stream;head=" + head)


def test_a_change_is_told_by_size_by_content_or_by_absence(tmp_path: Path) -> None:
    path = write(tmp_path / "in.csv", b"case_id\nC-1\nC-2\n")
    started = fingerprint_file(path)
    assert changed_since(path, started) is None

    write(tmp_path / "in.csv", b"case_id\nC-1\n")
    assert changed_since(path, started) == "it had 16 bytes and now has 12"
    write(tmp_path / "in.csv", b"case_id\nC-1\nC-3\n")
    assert changed_since(path, started) == "its content changed"
    (tmp_path / "in.csv").unlink()
    assert changed_since(path, started) == "it no longer exists"
