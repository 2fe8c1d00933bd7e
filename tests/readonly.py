"""Folders and files that no process can write, as a read-only volume is: the permission bits for
an ordinary user; for root, whom permission bits do not stop (test containers often run as root),
the immutable attribute (`chattr +i`), which stops root too. Always undone, so pytest can remove
the folder afterwards.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def read_only(*paths: Path) -> Iterator[None]:
    """`paths` (folders: no file can be made or removed in them; files: none can be changed)."""
    if os.geteuid() != 0:
        modes = {path: stat.S_IMODE(path.stat().st_mode) for path in paths}
        for path, mode in modes.items():
            path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("as root, a read-only folder needs chattr (e2fsprogs)")
    names = [str(path) for path in paths]
    made = subprocess.run([chattr, "+i", *names], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        subprocess.run([chattr, "-i", *names], capture_output=True, check=False)
        pytest.skip(f"chattr +i is not supported here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", *names], check=True)


def tree(folder: Path) -> list[Path]:
    """`folder` and everything in it."""
    return [folder, *sorted(folder.rglob("*"))]
