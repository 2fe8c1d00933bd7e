"""The container image, from its Dockerfile (no Docker engine needed): a slim Python base, the
package without its test extras, a non-root user, an exec-form entrypoint so SIGTERM reaches the
command, the checkpoint volume as the state folder, configuration by BULKUPDATE_* environment.

Then the image's command itself: ENTRYPOINT + CMD run as a real subprocess through the installed
console script with the image's environment, and a run against the emulator that must keep its
checkpoint and failures file on the volume, not beside the (read-only) input.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from bulkupdate.config import ENV_PREFIX, SETTINGS
from bulkupdate.emulator.server import Emulator
from tests import dockerfile
from tests.dockerfile import ROOT
from tests.functional.runner import Completed, cli_env, fast_run_flags

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SLIM_PYTHON = re.compile(r"^(?:docker\.io/)?(?:library/)?python:(\d+)\.(\d+)(?:\.\d+)?-slim\b")
STATE_DIR_VARIABLE = ENV_PREFIX + "STATE_DIR"
TIMEOUT_S = 60.0

IMAGE = dockerfile.read()


def console_script(name: str) -> Path:
    """The installed console script: what the image's ENTRYPOINT names, from this environment."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f"{name} is not installed beside {sys.executable}"
    return path


def image_command(args: Sequence[str]) -> list[str]:
    """ENTRYPOINT + args, the entrypoint resolved to this environment's console script."""
    entrypoint = IMAGE.entrypoint
    assert entrypoint, "no ENTRYPOINT"
    return [str(console_script(entrypoint[0])), *entrypoint[1:], *args]


def run_image(args: Sequence[str], env: Mapping[str, str] | None = None) -> Completed:
    result = subprocess.run(
        image_command(args),
        env=cli_env({**IMAGE.final.env, **(env or {})}),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return Completed(result.returncode, result.stdout, result.stderr)


async def run_image_async(args: Sequence[str], env: Mapping[str, str]) -> Completed:
    """Without blocking the loop, so an in-process emulator keeps answering."""
    process = await asyncio.create_subprocess_exec(
        *image_command(args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env({**IMAGE.final.env, **env}),
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Completed(process.returncode, stdout.decode(), stderr.decode())


def documented_run_flags() -> set[str]:
    """The flags of the README's `bulkupdate run` synopsis (its first line and the indented
    lines that continue it)."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("bulkupdate run ")]
    assert starts, "the README has no `bulkupdate run ...` synopsis line"
    synopsis = [lines[starts[0]]]
    for line in lines[starts[0] + 1 :]:
        if not line.startswith((" ", "\t")):
            break
        synopsis.append(line)
    return set(re.findall(r"--[a-z][a-z-]*", " ".join(synopsis)))


def flag(setting: str) -> str:
    return "--" + setting.replace("_", "-")


# --- the Dockerfile ------------------------------------------------------------------------------


def test_the_dockerfile_reader_joins_continuations_and_reads_exec_and_shell_forms() -> None:
    image = dockerfile.parse(
        "# syntax=docker/dockerfile:1\n"
        "ARG VERSION=3.11\n"
        "FROM --platform=linux/amd64 python:3.11-slim AS build\n"
        "RUN pip wheel . \\\n"
        "    # a comment inside a continuation\n"
        "    && echo done\n"
        "FROM build\n"
        'ENV A=1 B="two words"\n'
        "ENV LEGACY some value\n"
        'VOLUME ["/v1"]\n'
        "VOLUME /v2 /v3\n"
        'ENTRYPOINT ["tool", "--flag"]\n'
        "CMD tool --help\n"
    )
    assert [(stage.base, stage.name) for stage in image.stages] == [
        ("python:3.11-slim", "build"),
        ("build", None),
    ]
    (run,) = image.stages[0].all("RUN")
    assert run.text == "pip wheel . && echo done"
    assert run.line == 4
    assert image.final.env == {"A": "1", "B": "two words", "LEGACY": "some value"}
    assert image.final.volumes == ["/v1", "/v2", "/v3"]
    assert image.entrypoint == ["tool", "--flag"]
    final_cmd = image.final.last("CMD")
    assert final_cmd is not None
    assert final_cmd.exec_form is None
    assert final_cmd.words == ["tool", "--help"]


def test_every_stage_builds_from_a_slim_python_image_the_package_supports() -> None:
    minimum = tuple(
        int(part) for part in PYPROJECT["project"]["requires-python"].removeprefix(">=").split(".")
    )
    names = {stage.name for stage in IMAGE.stages if stage.name}
    for stage in IMAGE.stages:
        if stage.base in names:
            continue  # built on an earlier stage, itself checked
        found = SLIM_PYTHON.match(stage.base)
        assert found, f"{stage.base} is not a slim Python image"
        assert (int(found[1]), int(found[2])) >= minimum[:2]


def test_the_image_installs_the_package_without_its_test_extras() -> None:
    installs = [
        run.text
        for stage in IMAGE.stages
        for run in stage.all("RUN")
        if re.search(r"\bpip\b.*\b(install|wheel)\b", run.text)
    ]
    assert any(re.search(r"\bpip install\b", run.text) for run in IMAGE.final.all("RUN"))
    assert PYPROJECT["project"]["optional-dependencies"]  # there are extras to leave out
    for text in installs:
        assert "[" not in text, f"installs extras: {text}"


def copied_sources() -> list[str]:
    """What the Dockerfile's COPY instructions take from the build context."""
    return [
        word
        for stage in IMAGE.stages
        for instruction in stage.all("COPY")
        if not any(word.startswith("--from") for word in instruction.words)
        for word in instruction.words[:-1]
        if not word.startswith("--")
    ]


def test_the_build_context_holds_what_the_dockerfile_copies_and_no_venv_caches_or_data() -> None:
    patterns = dockerfile.read_dockerignore()
    copied = [
        path.relative_to(ROOT).as_posix()
        for source in copied_sources()
        for path in ([ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    ]
    extras = "bulkupdate/aws/data/connectcases/2022-10-03"
    assert {
        "pyproject.toml",
        "README.md",
        "bulkupdate/cli.py",
        "bulkupdate/demo/demo.csv",
        f"{extras}/service-2.sdk-extras.json",
        f"{extras}/NOTICE",
        f"{extras}/LICENSE-botocore.txt",
    } <= set(copied)
    assert [path for path in copied if not dockerfile.in_context(path, patterns)] == []
    leftovers = [
        ".venv/lib/python3.11/site-packages/boto3/__init__.py",
        ".git/HEAD",
        ".mypy_cache/3.11/cache.db",
        "bulkupdate/__pycache__/cli.cpython-311.pyc",
        "tests/conftest.py",
        "export.csv.gz",
        "export.checkpoint.sqlite",
        "bulkupdate-demo/demo.failures.csv",
    ]
    assert [path for path in leftovers if dockerfile.in_context(path, patterns)] == []


def test_the_image_runs_as_a_user_that_is_not_root() -> None:
    user = IMAGE.final.last("USER")
    assert user is not None, "no USER: the image would run as root"
    name, _, group = user.text.partition(":")
    assert name not in ("root", "0")
    assert group not in ("root", "0")
    assert IMAGE.final.index(user) > max(map(IMAGE.final.index, IMAGE.final.all("RUN")))


def test_the_entrypoint_is_the_console_script_in_exec_form_so_signals_reach_it() -> None:
    entrypoint = IMAGE.final.last("ENTRYPOINT")
    assert entrypoint is not None
    assert entrypoint.exec_form is not None, "shell form runs under /bin/sh, which eats SIGTERM"
    assert entrypoint.exec_form[0] in PYPROJECT["project"]["scripts"]
    cmd = IMAGE.final.last("CMD")
    assert cmd is None or cmd.exec_form is not None


def test_the_checkpoint_volume_is_the_state_dir_and_owned_by_the_runtime_user() -> None:
    (volume,) = IMAGE.final.volumes
    assert IMAGE.final.env[STATE_DIR_VARIABLE] == volume
    user = IMAGE.final.last("USER")
    assert user is not None
    declared = IMAGE.final.index(IMAGE.final.all("VOLUME")[-1])
    # A fresh volume copies the image's folder, owner included; later RUNs would not persist.
    chown = re.compile(rf"\bchown [^&;|]*\b{re.escape(user.text)}\b[^&;|]* {re.escape(volume)}\b")
    owners = [run for run in IMAGE.final.all("RUN") if chown.search(run.text)]
    assert owners, f"{volume} is not chowned to {user.text}"
    assert all(IMAGE.final.index(run) < declared for run in owners)


def test_the_image_is_configured_by_bulkupdate_environment_variables() -> None:
    variables = [name for name in IMAGE.final.env if name.startswith(ENV_PREFIX)]
    assert STATE_DIR_VARIABLE in variables


def test_every_bulkupdate_variable_of_the_image_names_a_real_setting() -> None:
    variables = [name for name in IMAGE.final.env if name.startswith(ENV_PREFIX)]
    unknown = [name for name in variables if name.removeprefix(ENV_PREFIX).lower() not in SETTINGS]
    assert not unknown, f"not settings, so silently ignored: {unknown}"


# --- the image's command -------------------------------------------------------------------------


def test_the_images_default_command_shows_the_help_and_lists_run() -> None:
    assert IMAGE.cmd == ["--help"]
    result = run_image(IMAGE.cmd)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^\s+run\s", result.stdout, re.MULTILINE), result.stdout


def test_run_help_lists_the_documented_flags_and_the_images_settings() -> None:
    result = run_image(["run", "--help"])
    assert result.returncode == 0, result.stderr
    from_image = {
        flag(name.removeprefix(ENV_PREFIX).lower())
        for name in IMAGE.final.env
        if name.startswith(ENV_PREFIX)
    }
    expected = documented_run_flags() | from_image
    assert {"--input", "--domain-id", "--grace-period"} <= expected
    listed = set(re.findall(r"--[a-z][a-z-]*", result.stdout))
    assert expected - listed == set()


async def test_a_run_with_the_images_environment_keeps_its_files_on_the_volume(
    emulator: Emulator, tmp_path: Path
) -> None:
    data, volume = tmp_path / "data", tmp_path / "checkpoints"
    data.mkdir()
    volume.mkdir()
    source = data / "export.csv"
    source.write_text("case_id,order_total\ncase-0000001,41\ncase-0000002,nope\n")

    result = await run_image_async(
        ["run", "--input", str(source), *fast_run_flags(emulator.url)],
        {STATE_DIR_VARIABLE: str(volume)},  # the volume, wherever this test can write
    )

    assert result.returncode == 1, result.stderr  # the second row cannot be a Number
    assert [u["caseId"] for u in emulator.service.updates] == ["case-0000001"]
    assert sorted(path.name for path in data.iterdir()) == ["export.csv"]
    written = {path.name for path in volume.iterdir()}
    assert {"export.checkpoint.sqlite", "export.failures.csv"} <= written
    logged = [line for line in result.stdout.splitlines() if line.strip()]
    assert logged
    assert all(isinstance(json.loads(line), dict) for line in logged)
