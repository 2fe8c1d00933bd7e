"""A small Dockerfile reader for the tests that check the image and the runner examples.

Reads instructions (backslash continuations joined, comment lines dropped), groups them into
stages at each FROM, and gives an instruction's arguments in exec form (a JSON array of strings)
or shell form. Not a full parser: no heredocs, no variable expansion, no `# escape=` directive.
Also which files the .dockerignore beside it leaves in the build context.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ENV, ...
    text: str  # the arguments, continuations joined
    line: int  # where the instruction starts (1-based)

    @property
    def exec_form(self) -> list[str] | None:
        """The arguments as a JSON array of strings, or None when in shell form."""
        if not self.text.startswith("["):
            return None
        try:
            value = json.loads(self.text)
        except json.JSONDecodeError:
            return None  # Docker, too, falls back to shell form
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        return None

    @property
    def words(self) -> list[str]:
        """Exec form if it is one, else the shell words."""
        exec_form = self.exec_form
        return exec_form if exec_form is not None else shlex.split(self.text)


@dataclass(frozen=True, slots=True)
class Stage:
    base: str  # the FROM image (or an earlier stage's name)
    name: str | None  # FROM ... AS name
    instructions: tuple[Instruction, ...]  # this stage's, FROM included

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword.upper()]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def index(self, instruction: Instruction) -> int:
        return self.instructions.index(instruction)

    @property
    def env(self) -> dict[str, str]:
        """Every ENV of the stage, later ones winning (`ENV K=V K2=V2` and legacy `ENV K V`)."""
        env: dict[str, str] = {}
        for instruction in self.all("ENV"):
            env.update(parse_env(instruction.text))
        return env

    @property
    def volumes(self) -> list[str]:
        return [path for instruction in self.all("VOLUME") for path in instruction.words]


@dataclass(frozen=True, slots=True)
class Dockerfile:
    stages: tuple[Stage, ...]

    @property
    def final(self) -> Stage:
        """The stage the image is built from (the last one)."""
        return self.stages[-1]

    @property
    def entrypoint(self) -> list[str]:
        """The final stage's ENTRYPOINT in exec form ([] if none; shell form is an error)."""
        return _exec_form_of(self.final.last("ENTRYPOINT"))

    @property
    def cmd(self) -> list[str]:
        return _exec_form_of(self.final.last("CMD"))

    @property
    def run_in_image(self) -> list[str]:
        """What `docker run IMAGE` runs: ENTRYPOINT + CMD."""
        return self.entrypoint + self.cmd


def _exec_form_of(instruction: Instruction | None) -> list[str]:
    if instruction is None:
        return []
    words = instruction.exec_form
    if words is None:
        raise ValueError(f"line {instruction.line}: {instruction.keyword} is not in exec form")
    return words


def parse_env(text: str) -> dict[str, str]:
    words = shlex.split(text)
    if words and "=" not in words[0]:  # legacy `ENV KEY value with spaces`
        key, _, value = text.strip().partition(" ")
        return {key: value.strip()}
    pairs = [word.partition("=") for word in words]
    return {key: value for key, _, value in pairs}


def instructions(text: str) -> list[Instruction]:
    found: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#") or (not line and not parts):
            continue  # comments go, even inside a continuation
        if not parts:
            start = number
        continued = line.endswith("\\")
        parts.append(line[:-1].strip() if continued else line)
        if continued:
            continue
        keyword, _, rest = " ".join(part for part in parts if part).partition(" ")
        found.append(Instruction(keyword.upper(), rest.strip(), start))
        parts = []
    if parts:
        raise ValueError(f"line {start}: the file ends inside a continuation")
    return found


def parse(text: str) -> Dockerfile:
    stages: list[Stage] = []
    current: list[Instruction] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            current = [instruction]
            words = [w for w in instruction.words if not w.startswith("--")]  # --platform=...
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name, ()))
        elif not stages:
            if instruction.keyword != "ARG":
                raise ValueError(f"line {instruction.line}: {instruction.keyword} before FROM")
            continue
        else:
            current.append(instruction)
        stages[-1] = Stage(stages[-1].base, stages[-1].name, tuple(current))
    if not stages:
        raise ValueError("no FROM instruction")
    return Dockerfile(tuple(stages))


def read(path: Path = DOCKERFILE) -> Dockerfile:
    return parse(path.read_text(encoding="utf-8"))


# --- the build context: .dockerignore

DOCKERIGNORE = ROOT / ".dockerignore"


def read_dockerignore(path: Path = DOCKERIGNORE) -> list[str]:
    """The patterns of a .dockerignore in order, comments and blank lines dropped; [] when there
    is none (the whole folder is the build context)."""
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern(text: str) -> re.Pattern[str]:
    """Docker's pattern syntax: `*` and `?` stay within one path segment, `**` crosses them."""
    parts = re.split(r"(\*\*/?|\*|\?)", text.strip("/"))
    wild = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wild.get(part, re.escape(part)) for part in parts))


def in_context(path: str, patterns: list[str]) -> bool:
    """Whether the file at `path` (relative to the Dockerfile's folder) is sent to the builder:
    the last pattern matching it or one of its parent folders decides; `!` includes again."""
    steps = path.split("/")
    candidates = ["/".join(steps[: n + 1]) for n in range(len(steps))]
    included = True
    for text in patterns:
        negated = text.startswith("!")
        pattern = _pattern(text.removeprefix("!"))
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            included = negated
    return included
