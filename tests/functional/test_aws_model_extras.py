"""The shipped model extras, with botocore's real loader: used when the installed model lacks
BatchUpdateCase (a real client then calls it over SigV4-signed HTTP), left out when a model on
the search path already has it; and the generator gives back the shipped file."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import botocore.loaders
import pytest
from aiobotocore.session import AioSession

from bulkupdate.aws.client import open_cases
from bulkupdate.aws.model import (
    API_VERSION,
    DATA_PATH,
    EXTRAS_FILE,
    SERVICE_NAME,
    add_extras,
    installed_model,
    lacks_extra_operations,
    service_model,
)
from bulkupdate.aws.model_extras import build_extras, render
from bulkupdate.emulator import EmulatorConfig, no_quotas, running_emulator
from tests.conftest import REGION

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = json.loads(EXTRAS_FILE.read_text(encoding="utf-8"))


pytestmark = pytest.mark.usefixtures("aws_env")


def merged_model() -> dict[str, Any]:
    """The installed model with the extras merged in, as a newer botocore would ship it."""
    model = copy.deepcopy(installed_model())
    model["operations"].update(EXTRAS["merge"]["operations"])
    model["shapes"].update(EXTRAS["merge"]["shapes"])
    return model


@pytest.fixture
def data_folder_with_the_operation(tmp_path: Path) -> Path:
    """A botocore data folder whose Connect Cases model has BatchUpdateCase already, told apart
    from the shipped extras by a cases maximum of 50 (the extras would make it 100)."""
    model = merged_model()
    model["shapes"]["BatchUpdateCaseRequestCasesList"]["max"] = 50
    folder = tmp_path / "models"
    target = folder / SERVICE_NAME / API_VERSION / "service-2.json"
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(model), encoding="utf-8")
    return folder


def test_the_installed_botocore_lacks_batch_update_case() -> None:
    # What this suite is run with (aiobotocore 3.10 pins botocore < 1.43.118). When a newer
    # botocore is installed, this fails to say the extras are no longer needed.
    assert "BatchUpdateCase" not in installed_model()["operations"]


def test_the_extras_hold_only_what_the_installed_model_lacks_and_no_documentation() -> None:
    installed = installed_model()
    merge = EXTRAS["merge"]
    assert list(merge["operations"]) == ["BatchUpdateCase"]
    assert not set(merge["shapes"]) & set(installed["shapes"])
    assert "documentation" not in EXTRAS_FILE.read_text(encoding="utf-8")


def test_the_license_notice_is_beside_the_extras() -> None:
    notice = (EXTRAS_FILE.parent / "NOTICE").read_text(encoding="utf-8")
    assert "botocore" in notice
    assert "Apache License" in (EXTRAS_FILE.parent / "LICENSE-botocore.txt").read_text()


def test_the_extras_and_their_notice_ship_as_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["bulkupdate.aws"]
    package = ROOT / "bulkupdate" / "aws"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    beside = EXTRAS_FILE.parent
    assert {EXTRAS_FILE, beside / "NOTICE", beside / "LICENSE-botocore.txt"} <= shipped


def test_the_generator_gives_back_the_shipped_file_from_a_model_that_has_the_operation() -> None:
    document, differing = build_extras(merged_model(), installed_model())
    assert render(document) == EXTRAS_FILE.read_text(encoding="utf-8")
    assert differing == []


def test_a_session_whose_model_lacks_the_operation_gets_the_extras_first() -> None:
    loader = AioSession().get_component("data_loader")

    assert add_extras(loader)
    assert loader.search_paths[0] == str(DATA_PATH)
    assert "BatchUpdateCase" in loader.load_service_model(SERVICE_NAME, "service-2")["operations"]
    assert add_extras(loader)  # a second time changes nothing
    assert loader.search_paths.count(str(DATA_PATH)) == 1


def test_a_model_on_the_search_path_that_has_the_operation_keeps_the_extras_off(
    data_folder_with_the_operation: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DATA_PATH", str(data_folder_with_the_operation))
    loader = AioSession().get_component("data_loader")

    assert not lacks_extra_operations(loader.search_paths)
    assert not add_extras(loader)
    assert str(DATA_PATH) not in loader.search_paths
    cases = loader.load_service_model(SERVICE_NAME, "service-2")["shapes"]
    assert cases["BatchUpdateCaseRequestCasesList"]["max"] == 50


def test_the_check_looks_past_the_shipped_folder_on_the_path() -> None:
    paths = [str(DATA_PATH), *botocore.loaders.Loader().search_paths]
    assert lacks_extra_operations(paths)


def test_the_emulators_model_has_the_operation() -> None:
    assert "BatchUpdateCase" in service_model()["operations"]


async def test_the_projects_client_calls_batch_update_case_over_sigv4() -> None:
    emulator_config = EmulatorConfig(
        port=0, quotas=no_quotas(), demo_cases=2, verify_signatures=True
    )
    async with (
        running_emulator(emulator_config) as emu,
        open_cases(domain_id="demo", endpoint_url=emu.url, region=REGION) as cases,
    ):
        assert hasattr(cases._client, "batch_update_case")
        outcome = await cases.batch_update_case(
            ["case-0000001", "case-0000002"],
            [{"id": "vip", "value": {"booleanValue": True}}],
            performed_by=None,
            client_token="sig",
        )
    assert outcome.succeeded == ("case-0000001", "case-0000002")
    assert emu.counters["BatchUpdateCase"] == {"ok": 1}


async def test_the_projects_client_uses_a_model_that_has_the_operation_as_it_is(
    data_folder_with_the_operation: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_DATA_PATH", str(data_folder_with_the_operation))
    emulator_config = EmulatorConfig(port=0, quotas=no_quotas(), demo_cases=1)
    async with (
        running_emulator(emulator_config) as emu,
        open_cases(domain_id="demo", endpoint_url=emu.url, region=REGION) as cases,
    ):
        operation = cases._client.meta.service_model.operation_model("BatchUpdateCase")
        outcome = await cases.batch_update_case(
            ["case-0000001"], [], status="closed", performed_by=None, client_token="own"
        )
    assert operation.input_shape.members["cases"].metadata["max"] == 50  # not the extras' 100
    assert outcome.succeeded == ("case-0000001",)
