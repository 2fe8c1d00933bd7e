"""The runner examples in jobs/runners/ (Kubernetes Job and Indexed Job, ECS task definition, Batch
job definition and array job) agree with the command and the image: their commands parse and
resolve to a complete run, they keep the checkpoint, failures file and summary where a retry finds
them (the image's volume on persistent storage, or DynamoDB and S3), give the command longer than
its grace period after SIGTERM, and map `bulkupdate.exits` onto retry or fail the way the README
says. The sharded examples start one task per shard, and each task resolves to its own shard.

Each runner's own rules (which retry rule applies first, what an unmatched exit does) are modelled
here from its documentation, so a reordered or mistyped rule fails a test.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from bulkupdate.cli import RUN_FLAGS, build_parser
from bulkupdate.config import ENV_PREFIX, SETTINGS, RunConfig, resolve
from bulkupdate.errors import ConfigError
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_INTERRUPTED, EXIT_USAGE
from bulkupdate.models import INDEX_VARIABLES, Shard
from tests import dockerfile
from tests.dockerfile import ROOT

RUNNERS = ROOT / "jobs" / "runners"
CONTAINER = "bulkupdate"  # the container's name in every example
COMMAND = "bulkupdate"  # the image's ENTRYPOINT: the console script
(GRACE_FIELD,) = [f for f in fields(RunConfig) if f.name == "grace_period"]
DEFAULT_GRACE_S: float = GRACE_FIELD.default  # type: ignore[assignment]
# After the grace period the command still records the drained calls, rebuilds the failures file
# and writes the summary: the runner must wait at least this much longer before SIGKILL.
WRAP_UP_S = 5.0
BATCH_STOP_TIMEOUT_S = 30  # AWS Batch: SIGKILL 30 s after SIGTERM, not set in a job definition
FARGATE_MAX_STOP_TIMEOUT_S = 120
BATCH_MAX_RULES = 5  # evaluateOnExit holds at most 5 conditions
OOM_KILLED = 137
SPOT_REASON = "Host EC2 (instance i-0123456789abcdef0) terminated."
# What each runner sets in a task of a sharded job: its index, 0-based.
KUBERNETES_INDEX = "JOB_COMPLETION_INDEX"  # in every pod of an Indexed Job
BATCH_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"  # in every child of an array job
S3, DYNAMODB = "s3://", "dynamodb://"

IMAGE = dockerfile.read()


@dataclass(frozen=True, slots=True)
class Mount:
    persistent: bool  # survives the container: a claim or a file system, not emptyDir
    read_only: bool


@dataclass(frozen=True, slots=True)
class Example:
    argv: list[str]  # what the container runs: ENTRYPOINT + CMD after the runner's overrides
    env: dict[str, str]  # the image's ENV, then the example's
    mounts: dict[str, Mount]  # container path -> mount
    stop_timeout_s: float  # SIGTERM to SIGKILL
    index_variable: str | None = None  # set by the runner in each task of a sharded job

    @property
    def args(self) -> list[str]:
        """The command's arguments: argv without the entrypoint."""
        assert self.argv[:1] == [COMMAND], f"the container does not run {COMMAND}: {self.argv}"
        return self.argv[1:]


def container_argv(entrypoint: list[str] | None, command: list[str] | None) -> list[str]:
    """Docker's rule: an entrypoint override drops the image's CMD; a command replaces CMD."""
    if entrypoint is None:
        return IMAGE.entrypoint + (IMAGE.cmd if command is None else command)
    return entrypoint + (command or [])


def name_values(items: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {item["name"]: str(item["value"]) for item in items if "value" in item}


def one_container(containers: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    found = [c for c in containers if c["name"] == CONTAINER]
    assert len(found) == 1, f"expected one container named {CONTAINER}"
    return found[0]


# --- reading each runner's format --------------------------------------------------------------


def kubernetes_job(path: Path) -> dict[str, Any]:
    jobs = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "Job"]
    assert len(jobs) == 1, "expected one Job"
    assert jobs[0]["apiVersion"] == "batch/v1"
    job: dict[str, Any] = jobs[0]
    return job


def kubernetes_example(path: Path) -> Example:
    spec = kubernetes_job(path)["spec"]
    pod = spec["template"]["spec"]
    container = one_container(pod["containers"])
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    mounts = {
        mount["mountPath"]: Mount(
            persistent="persistentVolumeClaim" in volumes[mount["name"]],
            read_only=bool(mount.get("readOnly")),
        )
        for mount in container.get("volumeMounts", [])
    }
    return Example(
        container_argv(container.get("command"), container.get("args")),
        {**IMAGE.final.env, **name_values(container.get("env", []))},
        mounts,
        pod["terminationGracePeriodSeconds"],  # explicit: the default (30 s) is not documentation
        KUBERNETES_INDEX if spec.get("completionMode") == "Indexed" else None,
    )


def ecs_container_example(
    container: Mapping[str, Any],
    volumes: Sequence[Mapping[str, Any]],
    stop_timeout_s: float,
    parameters: Mapping[str, str] | None = None,
) -> Example:
    """ECS and Batch share containerPath/sourceVolume mounts and name/value environments."""
    by_name = {volume["name"]: volume for volume in volumes}
    mounts = {
        mount["containerPath"]: Mount(
            persistent="efsVolumeConfiguration" in by_name[mount["sourceVolume"]],
            read_only=bool(mount.get("readOnly")),
        )
        for mount in container.get("mountPoints", [])
    }
    command = container.get("command")
    if parameters is not None and command is not None:  # Batch fills Ref::name from parameters
        command = [parameters.get(word.removeprefix("Ref::"), word) for word in command]
    return Example(
        container_argv(container.get("entryPoint"), command),
        {**IMAGE.final.env, **name_values(container.get("environment", []))},
        mounts,
        stop_timeout_s,
    )


def ecs_example(path: Path) -> Example:
    task = json.loads(path.read_text())
    container = one_container(task["containerDefinitions"])
    return ecs_container_example(container, task.get("volumes", []), container["stopTimeout"])


def batch_definition(path: Path) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(path.read_text())
    assert definition["type"] == "container"
    return definition


def batch_example(path: Path) -> Example:
    definition = batch_definition(path)
    properties = definition["containerProperties"]
    return ecs_container_example(
        properties,
        properties.get("volumes", []),
        BATCH_STOP_TIMEOUT_S,
        definition.get("parameters", {}),
    )


def batch_array_example(path: Path) -> Example:
    """A job definition submitted as an array job (`--array-properties size=N`, see README.md)."""
    return replace(batch_example(path), index_variable=BATCH_INDEX)


READERS: dict[str, Callable[[Path], Example]] = {
    "kubernetes-job.yaml": kubernetes_example,
    "kubernetes-indexed-job.yaml": kubernetes_example,
    "ecs-task-definition.json": ecs_example,
    "batch-job-definition.json": batch_example,
    "batch-array-job.json": batch_array_example,
}
DOCUMENTATION = {"README.md"}
README = RUNNERS / "README.md"


def example(name: str) -> Example:
    return READERS[name](RUNNERS / name)


def parsed(name: str) -> Any:
    return build_parser().parse_args(example(name).args)


def resolved(name: str, index: int = 0) -> RunConfig:
    """The run's settings in the container: the image's and example's environment, the index
    the runner sets in a sharded job's task (the first by default), the flags."""
    args = parsed(name)
    flags = {setting: getattr(args, setting) for setting in RUN_FLAGS}
    env, variable = example(name).env, example(name).index_variable
    if variable is not None:
        env = {**env, variable: str(index)}
    return resolve(job=None, job_path=args.job, env=env, flags=flags)


def under(path: str, folder: str) -> bool:
    return PurePosixPath(folder) in PurePosixPath(path).parents


def outlives_the_container(name: str, location: str) -> bool:
    """In S3, or under a persistent, writable mount: a retry on another host finds it."""
    writable = Mount(persistent=True, read_only=False)
    mounts = example(name).mounts
    return location.startswith(S3) or any(
        under(location, path) and mount == writable for path, mount in mounts.items()
    )


def readme_commands(*program: str) -> list[list[str]]:
    """The shell commands in README.md's sh blocks that start with these words, as words."""
    blocks = re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.M | re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    commands = [shlex.split(line, comments=True) for line in lines]
    return [words for words in commands if tuple(words[: len(program)]) == program]


def option(words: Sequence[str], flag: str) -> str:
    assert words.count(flag) == 1, f"expected one {flag} in {shlex.join(words)}"
    return words[words.index(flag) + 1]


# --- the runners' retry rules, as documented -----------------------------------------------------


def pod_failure_action(
    policy: Mapping[str, Any], exit_code: int | None = None, conditions: Sequence[str] = ()
) -> str:
    """Kubernetes: the first rule that matches decides; no match counts toward backoffLimit."""
    for rule in policy["rules"]:
        on_exit = rule.get("onExitCodes")
        if (
            on_exit is not None
            and exit_code is not None
            and on_exit.get("containerName", CONTAINER) == CONTAINER
            and (exit_code in on_exit["values"]) == (on_exit["operator"] == "In")
        ):
            return str(rule["action"])
        for pattern in rule.get("onPodConditions", []):
            if pattern["type"] in conditions and pattern.get("status", "True") == "True":
                return str(rule["action"])
    return "Count"


def batch_matches(pattern: str | None, value: str | None) -> bool:
    """A Batch pattern: exact, or a prefix when it ends with *."""
    if pattern is None:
        return True
    if value is None:
        return False
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def batch_action(
    strategy: Mapping[str, Any], exit_code: int | None, status_reason: str | None = None
) -> str:
    """AWS Batch: the first condition whose every pattern matches decides; no match retries."""
    for rule in strategy.get("evaluateOnExit", []):
        if batch_matches(
            rule.get("onExitCode"), None if exit_code is None else str(exit_code)
        ) and batch_matches(rule.get("onStatusReason"), status_reason):
            return str(rule["action"]).upper()
    return "RETRY"


# --- every example -------------------------------------------------------------------------------


def test_every_file_in_jobs_runners_is_an_example_these_tests_read() -> None:
    files = {path.name for path in RUNNERS.iterdir() if path.is_file()}
    assert files - DOCUMENTATION == set(READERS)
    assert files >= DOCUMENTATION


@pytest.mark.parametrize("name", READERS)
def test_each_example_runs_the_images_entrypoint_with_a_run_command_that_parses(
    name: str,
) -> None:
    assert IMAGE.entrypoint == [COMMAND]
    assert parsed(name).command == "run"


@pytest.mark.parametrize("name", READERS)
def test_each_example_resolves_to_a_complete_run_configuration(name: str) -> None:
    config = resolved(name)
    assert config.input
    assert config.domain_id


@pytest.mark.parametrize("name", READERS)
def test_each_bulkupdate_variable_an_example_sets_names_a_real_setting(name: str) -> None:
    variables = [key for key in example(name).env if key.startswith(ENV_PREFIX)]
    assert variables
    unknown = [key for key in variables if key.removeprefix(ENV_PREFIX).lower() not in SETTINGS]
    assert not unknown, f"not settings (they would be silently ignored): {unknown}"


@pytest.mark.parametrize("name", READERS)
def test_each_example_keeps_its_checkpoint_in_dynamodb_or_on_the_images_volume(name: str) -> None:
    """A file checkpoint lives on the image's VOLUME, mounted writable on persistent storage;
    a DynamoDB checkpoint outlives any container and needs no volume."""
    assert IMAGE.final.volumes, "the Dockerfile declares no VOLUME"
    config = resolved(name)
    if config.checkpoint.startswith(DYNAMODB):
        return
    (volume,) = IMAGE.final.volumes
    mounts = example(name).mounts
    assert volume in mounts, f"{volume} is not mounted"
    assert mounts[volume] == Mount(persistent=True, read_only=False)
    assert under(config.checkpoint, volume), config.checkpoint


@pytest.mark.parametrize("name", READERS)
def test_each_example_writes_its_failures_and_summary_where_they_outlive_the_container(
    name: str,
) -> None:
    config = resolved(name)
    written = [config.failures, *([config.summary] if config.summary else [])]
    assert [path for path in written if not outlives_the_container(name, path)] == []


@pytest.mark.parametrize("name", READERS)
def test_each_example_reads_its_input_from_s3_or_a_mounted_volume(name: str) -> None:
    config = resolved(name)
    mounted = any(under(config.input, path) for path in example(name).mounts)
    assert config.input.startswith(S3) or mounted, config.input


@pytest.mark.parametrize("name", READERS)
def test_each_example_waits_longer_than_the_grace_period_before_killing_the_command(
    name: str,
) -> None:
    # The example's own setting, and the default should a submit-time override drop it.
    grace_s = max(resolved(name).grace_period, DEFAULT_GRACE_S)
    assert example(name).stop_timeout_s >= grace_s + WRAP_UP_S


# --- sharded examples ----------------------------------------------------------------------------


KUBERNETES_INDEXED = RUNNERS / "kubernetes-indexed-job.yaml"
BATCH_ARRAY = RUNNERS / "batch-array-job.json"


def batch_array_submissions() -> list[list[str]]:
    """The README's `aws batch submit-job` commands for the array job's definition."""
    name = batch_definition(BATCH_ARRAY)["jobDefinitionName"]
    submissions = readme_commands("aws", "batch", "submit-job")
    return [words for words in submissions if option(words, "--job-definition") == name]


def tasks(name: str) -> int:
    """How many tasks the runner starts for the example: completions, or the array's size."""
    if name == KUBERNETES_INDEXED.name:
        return int(kubernetes_job(KUBERNETES_INDEXED)["spec"]["completions"])
    (submission,) = batch_array_submissions()
    size = option(submission, "--array-properties")
    assert re.fullmatch(r"size=\d+", size), size
    return int(size.removeprefix("size="))


SHARDED = [name for name in READERS if name in (KUBERNETES_INDEXED.name, BATCH_ARRAY.name)]


def test_the_runners_set_an_index_variable_bulkupdate_reads() -> None:
    variables = {example(name).index_variable for name in READERS} - {None}
    assert variables == {KUBERNETES_INDEX, BATCH_INDEX}
    assert variables <= set(INDEX_VARIABLES)
    assert {name for name in READERS if example(name).index_variable} == set(SHARDED)


@pytest.mark.parametrize("name", SHARDED)
def test_each_sharded_example_leaves_the_index_to_the_runner(name: str) -> None:
    assert "/" not in parsed(name).shard, "a fixed INDEX would run one shard in every task"
    with pytest.raises(ConfigError, match="--shard"):  # outside the runner: refused, not guessed
        resolve(env=example(name).env, flags={"input": "in.csv", "shard": parsed(name).shard})


@pytest.mark.parametrize("name", SHARDED)
def test_each_sharded_example_starts_one_task_per_shard(name: str) -> None:
    shard = resolved(name).shard
    assert shard is not None
    assert shard.count > 1
    assert tasks(name) == shard.count


@pytest.mark.parametrize("name", SHARDED)
def test_each_task_of_a_sharded_example_applies_its_own_shard(name: str) -> None:
    count = tasks(name)
    assert [resolved(name, index).shard for index in range(count)] == [
        Shard(index, count) for index in range(count)
    ]
    with pytest.raises(ConfigError, match="--shard"):  # a task too many fails, exit 2
        resolved(name, count)


@pytest.mark.parametrize("name", SHARDED)
def test_each_shard_of_a_sharded_example_uploads_its_own_failures_file_and_summary(
    name: str,
) -> None:
    configs = [resolved(name, index) for index in range(tasks(name))]
    for written in ([c.failures for c in configs], [c.summary or "" for c in configs]):
        assert all(path.startswith(S3) for path in written), written
        assert len(set(written)) == len(configs), f"shards overwrite each other's: {written}"


@pytest.mark.parametrize("name", SHARDED)
def test_the_shards_of_a_sharded_example_share_one_job_checkpoint_and_rate(name: str) -> None:
    configs = [resolved(name, index) for index in range(tasks(name))]
    assert {(c.job_name, c.checkpoint, c.rate) for c in configs} == {
        (configs[0].job_name, configs[0].checkpoint, configs[0].rate)
    }
    assert configs[0].checkpoint.startswith(DYNAMODB)  # keyed by (job name, shard)
    shares = [c.shard.rate_share(c.rate, c.burst)[0] for c in configs if c.shard]
    assert sum(shares) == pytest.approx(configs[0].rate)  # the rate is the whole job's


@pytest.mark.parametrize("name", SHARDED)
def test_the_readmes_status_command_shows_each_sharded_examples_job(name: str) -> None:
    config = resolved(name)
    shown = []
    for words in readme_commands("bulkupdate", "status"):
        args = build_parser().parse_args(words[1:])
        shown.append((args.checkpoint, args.job))
    assert (config.checkpoint, config.job_name) in shown


# --- Kubernetes ----------------------------------------------------------------------------------


KUBERNETES = RUNNERS / "kubernetes-job.yaml"
# Each Job and the field that bounds its crashes (per index with backoffLimitPerIndex).
KUBERNETES_JOBS = {KUBERNETES.name: "backoffLimit", KUBERNETES_INDEXED.name: "backoffLimitPerIndex"}


def stops_the_other_pods(spec: Mapping[str, Any], exits: Mapping[int, int]) -> bool:
    """Kubernetes, an Indexed Job with backoffLimitPerIndex: whether pods failing with these
    exit codes (index -> code) end the Job while its other indexes still run. A FailJob rule
    does; FailIndex fails that index at once, and more failed indexes than maxFailedIndexes do.
    (Count fails an index only once its backoffLimitPerIndex is spent: not modelled.)"""
    failed = set()
    for index, code in exits.items():
        action = pod_failure_action(spec["podFailurePolicy"], exit_code=code)
        if action == "FailJob":
            return True
        if action == "FailIndex":
            failed.add(index)
    limit = spec.get("maxFailedIndexes")
    return limit is not None and len(failed) > limit


@pytest.mark.parametrize("name", KUBERNETES_JOBS)
def test_each_kubernetes_job_retries_an_interrupted_run_without_counting_it(name: str) -> None:
    policy = kubernetes_job(RUNNERS / name)["spec"]["podFailurePolicy"]
    assert pod_failure_action(policy, exit_code=EXIT_INTERRUPTED) == "Ignore"


@pytest.mark.parametrize("name", KUBERNETES_JOBS)
def test_each_kubernetes_job_does_not_count_a_disrupted_pod(name: str) -> None:
    policy = kubernetes_job(RUNNERS / name)["spec"]["podFailurePolicy"]
    assert pod_failure_action(policy, conditions=["DisruptionTarget"]) == "Ignore"


@pytest.mark.parametrize(("name", "limit"), KUBERNETES_JOBS.items())
def test_other_kubernetes_crashes_count_toward_a_positive_backoff_limit(
    name: str, limit: str
) -> None:
    spec = kubernetes_job(RUNNERS / name)["spec"]
    assert pod_failure_action(spec["podFailurePolicy"], exit_code=OOM_KILLED) == "Count"
    assert spec[limit] >= 1
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # a podFailurePolicy needs it


def test_the_kubernetes_job_fails_at_once_on_what_a_retry_cannot_fix() -> None:
    policy = kubernetes_job(KUBERNETES)["spec"]["podFailurePolicy"]
    actions = {
        code: pod_failure_action(policy, exit_code=code)
        for code in (EXIT_FAILED_ROWS, EXIT_USAGE, EXIT_ABORTED)
    }
    assert actions == {EXIT_FAILED_ROWS: "FailJob", EXIT_USAGE: "FailJob", EXIT_ABORTED: "FailJob"}


def test_the_kubernetes_job_never_runs_two_pods_on_one_checkpoint() -> None:
    spec = kubernetes_job(KUBERNETES)["spec"]
    assert spec.get("parallelism", 1) == 1
    assert spec.get("completions", 1) == 1
    assert spec.get("podReplacementPolicy", "Failed") == "Failed"


def test_the_indexed_job_runs_every_shard_at_once_and_never_two_pods_on_one_shard() -> None:
    spec = kubernetes_job(KUBERNETES_INDEXED)["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == tasks(KUBERNETES_INDEXED.name)
    assert spec.get("podReplacementPolicy", "Failed") == "Failed"


def test_the_indexed_job_fails_only_the_shard_whose_rows_failed() -> None:
    policy = kubernetes_job(KUBERNETES_INDEXED)["spec"]["podFailurePolicy"]
    assert pod_failure_action(policy, exit_code=EXIT_FAILED_ROWS) == "FailIndex"


def test_the_indexed_job_fails_at_once_on_what_stops_every_shard() -> None:
    policy = kubernetes_job(KUBERNETES_INDEXED)["spec"]["podFailurePolicy"]
    actions = {
        code: pod_failure_action(policy, exit_code=code) for code in (EXIT_USAGE, EXIT_ABORTED)
    }
    assert actions == {EXIT_USAGE: "FailJob", EXIT_ABORTED: "FailJob"}


def test_shards_with_failed_rows_never_stop_the_indexed_jobs_other_shards() -> None:
    spec = kubernetes_job(KUBERNETES_INDEXED)["spec"]
    count = spec["completions"]
    for last in range(count):  # every shard but `last` finished with failed rows
        others = {index: EXIT_FAILED_ROWS for index in range(count) if index != last}
        assert not stops_the_other_pods(spec, others)
    for code in (EXIT_USAGE, EXIT_ABORTED):
        assert stops_the_other_pods(spec, {0: code})


def test_the_indexed_jobs_per_index_fields_pass_the_apis_validation() -> None:
    spec = kubernetes_job(KUBERNETES_INDEXED)["spec"]
    # backoffLimitPerIndex needs an Indexed Job; FailIndex and maxFailedIndexes need it.
    assert spec["completionMode"] == "Indexed"
    assert spec["backoffLimitPerIndex"] >= 0
    assert 0 <= spec["maxFailedIndexes"] <= spec["completions"]
    actions = {rule["action"] for rule in spec["podFailurePolicy"]["rules"]}
    assert actions <= {"FailJob", "FailIndex", "Ignore", "Count"}


# --- ECS -----------------------------------------------------------------------------------------


def test_the_ecs_stop_timeout_is_within_fargates_limit() -> None:
    assert example("ecs-task-definition.json").stop_timeout_s <= FARGATE_MAX_STOP_TIMEOUT_S


# --- AWS Batch -----------------------------------------------------------------------------------


BATCH = RUNNERS / "batch-job-definition.json"
BATCH_DEFINITIONS = [BATCH.name, BATCH_ARRAY.name]


@pytest.mark.parametrize("name", BATCH_DEFINITIONS)
def test_each_batch_job_retries_an_interrupted_run_and_a_reclaimed_spot_host(name: str) -> None:
    strategy = batch_definition(RUNNERS / name)["retryStrategy"]
    assert batch_action(strategy, EXIT_INTERRUPTED) == "RETRY"
    assert batch_action(strategy, None, SPOT_REASON) == "RETRY"
    assert batch_action(strategy, EXIT_INTERRUPTED, SPOT_REASON) == "RETRY"


@pytest.mark.parametrize("name", BATCH_DEFINITIONS)
def test_each_batch_job_exits_on_what_a_retry_cannot_fix(name: str) -> None:
    strategy = batch_definition(RUNNERS / name)["retryStrategy"]
    actions = {
        code: batch_action(strategy, code) for code in (EXIT_FAILED_ROWS, EXIT_USAGE, EXIT_ABORTED)
    }
    assert actions == {EXIT_FAILED_ROWS: "EXIT", EXIT_USAGE: "EXIT", EXIT_ABORTED: "EXIT"}


@pytest.mark.parametrize("name", BATCH_DEFINITIONS)
def test_each_batch_job_retries_other_crashes_a_bounded_number_of_times(name: str) -> None:
    strategy = batch_definition(RUNNERS / name)["retryStrategy"]
    assert batch_action(strategy, OOM_KILLED) == "RETRY"
    assert 1 < strategy["attempts"] <= 10
    assert len(strategy["evaluateOnExit"]) <= BATCH_MAX_RULES
