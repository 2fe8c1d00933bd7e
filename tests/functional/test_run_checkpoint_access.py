"""Who may use a checkpoint, and how: a run refuses a read-only state folder as not writable,
`bulkupdate status` reads a checkpoint on a read-only volume (a killed run's -wal included), and
--restart never takes a checkpoint from a run that holds it. The real command in a subprocess
against an in-process emulator; read-only as a volume is, even for root (tests/readonly.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bulkupdate.checkpoint.lock import RunLock
from bulkupdate.checkpoint.sqlite import SqliteCheckpointStore
from bulkupdate.checkpoint.store import CheckpointError
from bulkupdate.emulator import Emulator
from bulkupdate.exits import EXIT_FAILED_ROWS, EXIT_OK, EXIT_USAGE
from bulkupdate.models import RowStatus
from tests.functional.runner import fast_run_flags, run_cli
from tests.functional.test_run_inputs import emu, update_calls, write_csv
from tests.functional.test_run_resume import Job, child, emulator, make_rows, wait_until
from tests.readonly import read_only, tree
from tests.unit.test_checkpoint import JOB, outcome, point

__all__ = ["emu"]  # the emulator fixture: 80 demo cases, no quotas


# --- read-only volumes ----------------------------------------------------------------------


async def test_a_read_only_state_folder_is_refused_as_not_writable_naming_it(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "fix.csv"
    write_csv(path, ["case_id", "Priority"], [["case-0000001", "high"]])
    state = tmp_path / "state"
    first = await run_cli(
        "run", "--input", str(path), *fast_run_flags(emu.url), "--state-dir", str(state)
    )
    assert first.returncode == EXIT_OK, first.stderr
    calls = update_calls(emu)
    with read_only(*tree(state)):
        again = await run_cli(
            "run", "--input", str(path), *fast_run_flags(emu.url), "--state-dir", str(state)
        )
    assert again.returncode == EXIT_USAGE, again.stderr
    assert f"bulkupdate: --state-dir: the checkpoint {state / 'fix.checkpoint.sqlite'}" in (
        again.stderr
    )
    assert f"its folder {state} is not writable" in again.stderr
    assert "is not a bulkupdate checkpoint" not in again.stderr
    assert update_calls(emu) == calls


async def test_status_reads_a_checkpoint_on_a_read_only_volume_whether_its_run_ended_or_died(
    emu: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "fix.csv"
    write_csv(path, ["case_id", "Priority"], [["case-0000001", "high"], ["case-0000002", "nope"]])
    state = tmp_path / "state"
    done = await run_cli(
        "run", "--input", str(path), *fast_run_flags(emu.url), "--state-dir", str(state)
    )
    assert done.returncode == EXIT_FAILED_ROWS, done.stderr
    files = tree(state)
    with read_only(*files):  # the run ended: the file alone holds it all
        ended = await status_json(state / "fix.checkpoint.sqlite")
    assert (ended["applied"], ended["failed"], ended["last_run"]["state"]) == (1, 1, "finished")
    assert tree(state) == files, "looking wrote nothing"

    volume = tmp_path / "volume"
    volume.mkdir()
    store = SqliteCheckpointStore(volume / "x.checkpoint.sqlite")
    await store.open(JOB, restart=False)
    try:
        await store.commit([outcome(0), outcome(1, RowStatus.FAILED)], point(2), {})
        # Not closed, as a killed run leaves it: its last commits are in the -wal file.
        assert (volume / "x.checkpoint.sqlite-wal").stat().st_size > 0
        with read_only(*tree(volume)):
            died = await status_json(volume / "x.checkpoint.sqlite")
    finally:
        await store.close()
    assert (died["applied"], died["failed"], died["resume_line"]) == (1, 1, point(2).line)


async def test_a_checkpoint_store_in_a_read_only_folder_says_it_cannot_be_written(
    tmp_path: Path,
) -> None:
    # The run refuses such a folder before it opens the store (above); the store says so too.
    folder = tmp_path / "state"
    folder.mkdir()
    first = SqliteCheckpointStore(folder / "x.checkpoint.sqlite")
    await first.open(JOB, restart=False)
    await first.finish_run("finished", {})
    await first.close()
    store = SqliteCheckpointStore(folder / "x.checkpoint.sqlite")
    with read_only(*tree(folder)), pytest.raises(CheckpointError) as caught:
        await store.open(JOB, restart=False)
    assert caught.value.message.startswith(f"cannot be written: its folder {folder} is read-only")
    assert "--state-dir" in caught.value.message


async def status_json(checkpoint: Path) -> dict[str, Any]:
    shown = await run_cli("status", "--checkpoint", str(checkpoint), "--json")
    assert shown.returncode == 0, shown.stderr
    info: dict[str, Any] = json.loads(shown.stdout)
    return info


async def test_status_of_a_read_only_checkpoint_whose_wal_it_cannot_read_says_to_copy_it(
    tmp_path: Path,
) -> None:
    live, volume = tmp_path / "live", tmp_path / "volume"
    live.mkdir()
    volume.mkdir()
    store = SqliteCheckpointStore(live / "x.checkpoint.sqlite")
    await store.open(JOB, restart=False)
    try:
        await store.commit([outcome(0)], point(1), {})
        for suffix in ("", "-wal"):  # copied without the -shm file
            name = f"x.checkpoint.sqlite{suffix}"
            shutil.copyfile(live / name, volume / name)
    finally:
        await store.close()
    with read_only(*tree(volume)):
        shown = await run_cli("status", "--checkpoint", str(volume / "x.checkpoint.sqlite"))
    assert shown.returncode == EXIT_USAGE, shown.stderr
    assert f"its latest commits are in {volume / 'x.checkpoint.sqlite-wal'}" in shown.stderr
    assert "copy the checkpoint and its -wal file to a writable folder" in shown.stderr


# --- --restart never takes a checkpoint from a run that holds it ----------------------------


async def test_restart_refuses_a_checkpoint_another_run_holds_rather_than_waiting_for_it(
    tmp_path: Path,
) -> None:
    async with emulator(5) as emu:
        job = Job(tmp_path, emu.url, make_rows(20, 5, seed=40))
        lock = RunLock(job.checkpoint.with_name(job.checkpoint.name + ".lock"))
        assert lock.try_acquire()  # another run, live
        try:
            async with child(job.argv("--restart"), job.environment(), tmp_path) as process:

                def waiting_or_ended() -> bool:
                    return "checkpoint_busy_waiting" in process.stdout() or not process.running

                await wait_until(waiting_or_ended, "the run to wait for the checkpoint or end")
                lock.release()  # that run ends: a restart that waited would now take over
                finished = await process.wait()
        finally:
            lock.release()
        assert finished.returncode == EXIT_USAGE, finished.stderr
        assert "checkpoint_busy_waiting" not in finished.stdout
        assert "--restart does not wait" in finished.stderr
        assert "Stop that run or let it end" in finished.stderr
        assert update_calls(emu) == 0, "nothing sent: the other run's progress stands"
        assert not job.checkpoint.exists()
