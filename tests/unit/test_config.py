"""Run settings: defaults < job file < BULKUPDATE_* environment < flags, errors naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from bulkupdate.config import Blank, FailureBudget, resolve
from bulkupdate.errors import ConfigError
from bulkupdate.run.dryrun import dry_run_path

REQUIRED = {"input": "data/crm.csv", "domain_id": "d-1"}


def test_defaults_are_aws_default_quota_and_files_beside_the_input() -> None:
    config = resolve(flags=REQUIRED)
    assert (config.rate, config.burst, config.max_attempts) == (2.0, 2, 8)
    assert config.checkpoint == "data/crm.checkpoint.sqlite"
    assert config.failures == "data/crm.failures.csv"
    assert config.job_name == "crm"
    assert config.blank is Blank.SKIP


def test_flags_beat_environment_which_beats_the_job_file() -> None:
    job = {**REQUIRED, "rate": 5, "burst": 3, "concurrency": 4}
    env = {"BULKUPDATE_RATE": "7", "BULKUPDATE_BURST": "6", "HOME": "/root"}
    config = resolve(job=job, job_path="jobs/nightly.toml", env=env, flags={"rate": 9.0})
    assert (config.rate, config.burst, config.concurrency) == (9.0, 6, 4)
    assert config.job_name == "nightly"


def test_unset_flags_do_not_override() -> None:
    config = resolve(job={**REQUIRED, "rate": 5}, flags={"rate": None, "dry_run": None})
    assert config.rate == 5.0
    assert config.dry_run is False


def test_a_gzipped_jsonl_input_gets_a_jsonl_failures_file() -> None:
    config = resolve(flags={"input": "/x/export.jsonl.gz", "domain_id": "d"})
    assert config.failures == "/x/export.failures.jsonl"


@pytest.mark.parametrize(
    ("source", "values", "key"),
    [
        ("flags", {"rate": 0}, "--rate"),
        ("flags", {"burst": 0}, "--burst"),
        ("flags", {"blank": "erase"}, "--blank"),
        ("flags", {"delimiter": ";;"}, "--delimiter"),
        ("env", {"BULKUPDATE_CONCURRENCY": "many"}, "BULKUPDATE_CONCURRENCY"),
        ("job", {"rate": float("nan")}, "job.toml: rate"),
        ("flags", {"rate": float("inf")}, "--rate"),
        ("flags", {"rate": 1e-320}, "--rate"),  # positive, but 1/rate overflows
        ("flags", {"rate": 1e-305, "shard": "0/10000"}, "--rate"),  # the share's does
        ("job", {"ratee": 5}, "job.toml: ratee"),
        ("flags", {"max_failures": "-1"}, "--max-failures"),
        ("flags", {"max_failures": "100%"}, "--max-failures"),
        ("env", {"BULKUPDATE_MAX_FAILURES": "lots"}, "BULKUPDATE_MAX_FAILURES"),
        ("flags", {"settle_period": 10, "call_timeout": 30}, "--settle-period"),
        ("job", {"batch": "sometimes"}, "job.toml: batch"),
        ("flags", {"batch_size": 101}, "--batch-size"),
        ("flags", {"batch_size": 0}, "--batch-size"),
        ("env", {"BULKUPDATE_BATCH_RATE": "0"}, "BULKUPDATE_BATCH_RATE"),
        ("flags", {"batch_burst": 1.5}, "--batch-burst"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(
    source: str, values: dict[str, Any], key: str
) -> None:
    arguments: dict[str, Any] = {"flags": dict(REQUIRED)}
    if source == "flags":
        arguments["flags"].update(values)
    elif source == "env":
        arguments["env"] = values
    else:
        arguments.update(job=values, job_path="job.toml")
    with pytest.raises(ConfigError) as raised:
        resolve(**arguments)
    assert raised.value.key == key


def test_batching_is_on_by_default_at_the_emulators_batch_quota_and_off_by_any_source() -> None:
    config = resolve(flags=REQUIRED)
    assert (config.batch, config.batch_size, config.batch_rate, config.batch_burst) == (
        "auto",
        100,
        2.0,
        2,
    )
    assert resolve(flags=REQUIRED, env={"BULKUPDATE_BATCH": "off"}).batch == "off"
    assert resolve(job={**REQUIRED, "batch": "off"}, flags={"batch": "auto"}).batch == "auto"


def test_input_and_domain_are_required() -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(flags={"input": "a.csv"})
    assert raised.value.key == "--domain-id"


def test_other_bulkupdate_environment_variables_are_left_alone() -> None:
    config = resolve(flags=REQUIRED, env={"BULKUPDATE_LOG_LEVEL": "debug", "BULKUPDATE_X": "1"})
    assert config.rate == 2.0
    assert config.log_level == "debug"


def test_paths_in_a_job_file_are_relative_to_its_folder_and_flags_to_the_working_folder() -> None:
    job = {"input": "export.csv", "domain_id": "d", "summary": "out/summary.json"}
    config = resolve(job=job, job_path="jobs/crm.toml", flags={"failures": "mine.csv"})
    assert config.input == "jobs/export.csv"
    assert config.summary == "jobs/out/summary.json"
    assert config.checkpoint == "jobs/export.checkpoint.sqlite"
    assert config.failures == "mine.csv"


def test_absolute_paths_urls_and_stdin_in_a_job_file_are_kept() -> None:
    job = {"input": "-", "domain_id": "d", "checkpoint": "/var/ck.sqlite", "summary": "s3://b/k"}
    config = resolve(job=job, job_path="jobs/crm.toml")
    assert (config.input, config.checkpoint, config.summary) == ("-", "/var/ck.sqlite", "s3://b/k")


def test_a_state_dir_holds_the_derived_checkpoint_and_failures_file() -> None:
    config = resolve(flags=REQUIRED, env={"BULKUPDATE_STATE_DIR": "/checkpoints"})
    assert config.checkpoint == "/checkpoints/crm.checkpoint.sqlite"
    assert config.failures == "/checkpoints/crm.failures.csv"


def test_the_job_file_mapping_tables_are_parsed() -> None:
    job = {
        **REQUIRED,
        "columns": {"Prio": "priority", "VIP Customer": "VIP"},
        "ignore_columns": ["Legacy ID"],
        "values": {"priority": {"Hi": "high", "Lo": "low"}, "vip": {"Y": True}},
        "set": {"account_code": "ACME", "order_total": 0},
    }
    mapping = resolve(job=job, job_path="j.toml").mapping
    assert mapping.target("Prio") == "priority"
    assert mapping.target("Due") == "Due"
    assert mapping.ignored == frozenset({"Legacy ID"})
    assert mapping.value_maps["vip"] == {"Y": True}
    assert mapping.constants == {"account_code": "ACME", "order_total": 0}


@pytest.mark.parametrize(
    ("job", "key"),
    [
        ({"columns": {"Prio": 3}}, "j.toml: columns.Prio"),
        ({"columns": "Prio"}, "j.toml: columns"),
        ({"ignore_columns": "Legacy ID"}, "j.toml: ignore_columns"),
        ({"values": {"priority": {"Hi": ["high"]}}}, "j.toml: values.priority.Hi"),
        ({"values": {"priority": "high"}}, "j.toml: values.priority"),
        ({"set": {"order_total": float("inf")}}, "j.toml: set.order_total"),
        ({"set": {"notes": {"a": 1}}}, "j.toml: set.notes"),
        ({"sett": {"notes": "x"}}, "j.toml: sett"),
    ],
)
def test_bad_mapping_tables_are_refused_naming_the_key(job: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(job={**REQUIRED, **job}, job_path="j.toml")
    assert raised.value.key == key


@pytest.mark.parametrize("url", ["s3://bucket", "s3://bucket/", "s3:///key", "s3://b/folder/"])
def test_an_s3_url_without_bucket_and_key_is_refused_before_the_run(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(flags={**REQUIRED, "failures": url})
    assert raised.value.key == "--failures"


def test_a_dry_run_of_an_s3_failures_file_stays_in_s3() -> None:
    assert dry_run_path("s3://b/out/x.failures.csv.gz") == "s3://b/out/x.failures.dry-run.csv.gz"
    assert dry_run_path("out/x.failures.jsonl") == "out/x.failures.dry-run.jsonl"


@pytest.mark.parametrize(
    ("text", "budget", "failed", "resolved", "exceeded"),
    [
        ("3", FailureBudget(rows=3), 3, 10, False),
        ("3", FailureBudget(rows=3), 4, 10, True),
        ("0", FailureBudget(rows=0), 1, 1, True),
        ("5%", FailureBudget(percent=5.0), 50, 99, False),  # under 100 resolved: not yet
        ("5%", FailureBudget(percent=5.0), 5, 100, False),
        ("5%", FailureBudget(percent=5.0), 6, 100, True),
        (" 2.5% ", FailureBudget(percent=2.5), 26, 1000, True),
    ],
)
def test_a_failure_budget_is_a_row_count_or_a_share_of_the_rows_resolved(
    text: str, budget: FailureBudget, failed: int, resolved: int, exceeded: bool
) -> None:
    config = resolve(flags={**REQUIRED, "max_failures": text})
    assert config.max_failures == budget
    assert budget.exceeded(failed, resolved) is exceeded


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("cp1252", "cp1252"),
        ("Windows-1252", "cp1252"),
        ("latin-1", "iso8859-1"),
        ("UTF8", "utf-8"),
        ("utf-8-sig", "utf-8"),  # UTF-8 accepts a BOM anyway
        ("shift_jis", "shift_jis"),
    ],
)
def test_the_input_encoding_is_kept_by_its_python_name(given: str, name: str) -> None:
    assert resolve(flags={**REQUIRED, "encoding": given}).encoding == name
    assert resolve(flags=REQUIRED, env={"BULKUPDATE_ENCODING": given}).encoding == name
    assert resolve(job={**REQUIRED, "encoding": given}, job_path="j.toml").encoding == name


def test_the_input_encoding_is_utf8_by_default() -> None:
    assert resolve(flags=REQUIRED).encoding == "utf-8"


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("klingon", "is not an encoding Python knows"),
        ("utf-16", "save"),  # not read line by line: ASCII bytes are not ASCII in it
        ("utf-32-le", "save"),
        ("cp037", "does not keep ASCII"),  # EBCDIC
        ("rot13", "does not keep ASCII"),  # a codec, but not of bytes to text
    ],
)
def test_an_encoding_that_cannot_be_read_line_by_line_is_refused_naming_the_key(
    given: str, said: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(flags={**REQUIRED, "encoding": given})
    assert raised.value.key == "--encoding"
    assert said in raised.value.message


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ({"flags": {"endpoint_url": "127.0.0.1:4566"}}, "--endpoint-url"),
        ({"env": {"BULKUPDATE_ENDPOINT_URL": "127.0.0.1:4566"}}, "BULKUPDATE_ENDPOINT_URL"),
        ({"job": {"endpoint_url": "127.0.0.1:4566"}, "job_path": "j.toml"}, "j.toml: endpoint_url"),
    ],
)
def test_an_endpoint_without_its_scheme_is_refused_naming_the_key_and_the_form_it_takes(
    source: dict[str, Any], key: str
) -> None:
    job = {**REQUIRED, **source.get("job", {})}
    others = {k: v for k, v in source.items() if k != "job"}
    flags = {**REQUIRED, **others.pop("flags", {})}
    with pytest.raises(ConfigError) as caught:
        resolve(job=job, flags=flags, **others)
    assert caught.value.key == key
    assert "give it with its scheme, like http://127.0.0.1:4566" in caught.value.message
