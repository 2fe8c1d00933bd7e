"""Shared fixtures: a real emulator on a loopback port and real aiobotocore clients signing with
fake credentials (the way s3transfer's tests build real clients)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.config import Config

from bulkupdate.aws.model import add_extras
from bulkupdate.emulator import EmulatorConfig, no_quotas, running_emulator
from bulkupdate.emulator.config import DEFAULT_CREDENTIALS
from bulkupdate.emulator.server import Emulator
from tests.motoserver import running_moto

ACCESS_KEY_ID, SECRET_ACCESS_KEY = next(iter(DEFAULT_CREDENTIALS.items()))
REGION = "us-east-1"


def client_config(**overrides: Any) -> Config:
    # One retry layer: botocore's own retries are off so every error reaches the test.
    options: dict[str, Any] = {"retries": {"total_max_attempts": 1}, "connect_timeout": 5}
    options.update(overrides)
    return Config(**options)


ClientFactory = Callable[..., AbstractAsyncContextManager[Any]]


@pytest.fixture
def make_client() -> ClientFactory:
    """make_client(url, **config) -> async context manager of a connectcases client (knowing
    BatchUpdateCase, through the shipped model extras when botocore lacks it)."""

    def factory(
        url: str,
        *,
        secret: str = SECRET_ACCESS_KEY,
        access_key: str = ACCESS_KEY_ID,
        **config: Any,
    ) -> AbstractAsyncContextManager[Any]:
        session = get_session()
        add_extras(session.get_component("data_loader"))
        return session.create_client(
            "connectcases",
            region_name=REGION,
            endpoint_url=url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret,
            config=client_config(**config),
        )

    return factory


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator's credentials in the environment, no profile, botocore's own data path."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator with no quotas and the demo domain ('demo') holding 5 cases."""
    async with running_emulator(EmulatorConfig(port=0, quotas=no_quotas(), demo_cases=5)) as emu:
        yield emu


@pytest.fixture
async def client(emulator: Emulator, make_client: ClientFactory) -> AsyncIterator[Any]:
    async with make_client(emulator.url) as cases:
        yield cases


@pytest.fixture
async def raw_client(emulator: Emulator, make_client: ClientFactory) -> AsyncIterator[Any]:
    """A client that skips botocore's parameter validation, so the emulator's own checks answer."""
    async with make_client(emulator.url, parameter_validation=False) as cases:
        yield cases


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A real moto server (DynamoDB and the rest) for the whole session, started on first use."""
    with running_moto() as url:
        yield url
