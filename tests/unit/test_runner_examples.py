"""The runner examples in jobs/runners/ (Kubernetes Job, ECS task definition, Batch job definition)
agree with the command and the image: their commands parse and resolve to a complete run, they
mount the image's checkpoint volume on persistent storage, give the command longer than its grace
period after SIGTERM, and map `bulkupdate.exits` onto retry or fail the way the README says.

Each runner's own rules (which retry rule applies first, what an unmatched exit does) are modelled
here from its documentation, so a reordered or mistyped rule fails a test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from bulkupdate.cli import RUN_FLAGS, build_parser
from bulkupdate.config import ENV_PREFIX, SETTINGS, RunConfig, resolve
from bulkupdate.exits import EXIT_ABORTED, EXIT_FAILED_ROWS, EXIT_INTERRUPTED, EXIT_USAGE
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
    pod = kubernetes_job(path)["spec"]["template"]["spec"]
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


READERS: dict[str, Callable[[Path], Example]] = {
    "kubernetes-job.yaml": kubernetes_example,
    "ecs-task-definition.json": ecs_example,
    "batch-job-definition.json": batch_example,
}
DOCUMENTATION = {"README.md"}


def example(name: str) -> Example:
    return READERS[name](RUNNERS / name)


def parsed(name: str) -> Any:
    return build_parser().parse_args(example(name).args)


def resolved(name: str) -> RunConfig:
    """The run's settings in the container: the image's and example's environment, the flags."""
    args = parsed(name)
    flags = {setting: getattr(args, setting) for setting in RUN_FLAGS}
    return resolve(job=None, job_path=args.job, env=example(name).env, flags=flags)


def under(path: str, folder: str) -> bool:
    return PurePosixPath(folder) in PurePosixPath(path).parents


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
def test_each_example_mounts_the_images_checkpoint_volume_writable_on_persistent_storage(
    name: str,
) -> None:
    assert IMAGE.final.volumes, "the Dockerfile declares no VOLUME"
    mounts = example(name).mounts
    for volume in IMAGE.final.volumes:
        assert volume in mounts, f"{volume} is not mounted"
        assert mounts[volume] == Mount(persistent=True, read_only=False)


@pytest.mark.parametrize("name", READERS)
def test_each_example_reads_its_input_from_a_mounted_volume(name: str) -> None:
    config = resolved(name)
    assert any(under(config.input, path) for path in example(name).mounts), config.input


@pytest.mark.parametrize("name", READERS)
def test_each_example_keeps_its_checkpoint_failures_and_summary_on_the_checkpoint_volume(
    name: str,
) -> None:
    config = resolved(name)
    (volume,) = IMAGE.final.volumes
    written = [config.checkpoint, config.failures, *([config.summary] if config.summary else [])]
    assert [path for path in written if not under(path, volume)] == []


@pytest.mark.parametrize("name", READERS)
def test_each_example_waits_longer_than_the_grace_period_before_killing_the_command(
    name: str,
) -> None:
    # The example's own setting, and the default should a submit-time override drop it.
    grace_s = max(resolved(name).grace_period, DEFAULT_GRACE_S)
    assert example(name).stop_timeout_s >= grace_s + WRAP_UP_S


# --- Kubernetes ----------------------------------------------------------------------------------


KUBERNETES = RUNNERS / "kubernetes-job.yaml"


def test_the_kubernetes_job_retries_an_interrupted_run_without_counting_it() -> None:
    policy = kubernetes_job(KUBERNETES)["spec"]["podFailurePolicy"]
    assert pod_failure_action(policy, exit_code=EXIT_INTERRUPTED) == "Ignore"


def test_the_kubernetes_job_fails_at_once_on_what_a_retry_cannot_fix() -> None:
    policy = kubernetes_job(KUBERNETES)["spec"]["podFailurePolicy"]
    actions = {
        code: pod_failure_action(policy, exit_code=code)
        for code in (EXIT_FAILED_ROWS, EXIT_USAGE, EXIT_ABORTED)
    }
    assert actions == {EXIT_FAILED_ROWS: "FailJob", EXIT_USAGE: "FailJob", EXIT_ABORTED: "FailJob"}


def test_the_kubernetes_job_does_not_count_a_disrupted_pod() -> None:
    policy = kubernetes_job(KUBERNETES)["spec"]["podFailurePolicy"]
    assert pod_failure_action(policy, conditions=["DisruptionTarget"]) == "Ignore"


def test_other_kubernetes_crashes_count_toward_a_positive_backoff_limit() -> None:
    spec = kubernetes_job(KUBERNETES)["spec"]
    assert pod_failure_action(spec["podFailurePolicy"], exit_code=OOM_KILLED) == "Count"
    assert spec["backoffLimit"] >= 1
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # a podFailurePolicy needs it


def test_the_kubernetes_job_never_runs_two_pods_on_one_checkpoint() -> None:
    spec = kubernetes_job(KUBERNETES)["spec"]
    assert spec.get("parallelism", 1) == 1
    assert spec.get("completions", 1) == 1
    assert spec.get("podReplacementPolicy", "Failed") == "Failed"


# --- ECS -----------------------------------------------------------------------------------------


def test_the_ecs_stop_timeout_is_within_fargates_limit() -> None:
    assert example("ecs-task-definition.json").stop_timeout_s <= FARGATE_MAX_STOP_TIMEOUT_S


# --- AWS Batch -----------------------------------------------------------------------------------


BATCH = RUNNERS / "batch-job-definition.json"


def test_the_batch_job_retries_an_interrupted_run_and_a_reclaimed_spot_host() -> None:
    strategy = batch_definition(BATCH)["retryStrategy"]
    assert batch_action(strategy, EXIT_INTERRUPTED) == "RETRY"
    assert batch_action(strategy, None, SPOT_REASON) == "RETRY"
    assert batch_action(strategy, EXIT_INTERRUPTED, SPOT_REASON) == "RETRY"


def test_the_batch_job_exits_on_what_a_retry_cannot_fix() -> None:
    strategy = batch_definition(BATCH)["retryStrategy"]
    actions = {
        code: batch_action(strategy, code) for code in (EXIT_FAILED_ROWS, EXIT_USAGE, EXIT_ABORTED)
    }
    assert actions == {EXIT_FAILED_ROWS: "EXIT", EXIT_USAGE: "EXIT", EXIT_ABORTED: "EXIT"}


def test_the_batch_job_retries_other_crashes_a_bounded_number_of_times() -> None:
    strategy = batch_definition(BATCH)["retryStrategy"]
    assert batch_action(strategy, OOM_KILLED) == "RETRY"
    assert 1 < strategy["attempts"] <= 10
    assert len(strategy["evaluateOnExit"]) <= BATCH_MAX_RULES
