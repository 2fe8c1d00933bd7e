"""The Connect Cases service model as botocore loads it, read once, handed out as plain data; and
the shipped model extras (`data/`) that teach an older botocore BatchUpdateCase.

No network. The emulator validates requests against this, so its limits follow botocore's.
botocore deep-merges `<service>/<version>/service-2.sdk-extras.json` found first on its loader's
search path into the model; `add_extras` puts the shipped folder first only when the model the
loader would load lacks an operation, so a botocore that has it is used as it is.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import botocore.loaders

SERVICE_NAME = "connectcases"
API_VERSION = "2022-10-03"
# A botocore data folder holding only the extras (and botocore's license notice beside them).
DATA_PATH = Path(__file__).with_name("data")
EXTRAS_FILE = DATA_PATH / SERVICE_NAME / API_VERSION / "service-2.sdk-extras.json"
# What the extras add (botocore >= 1.43.126 has them; aiobotocore 3.10 pins an older one).
EXTRA_OPERATIONS = ("BatchUpdateCase",)


def _load(search_paths: Sequence[str]) -> dict[str, Any]:
    loader = botocore.loaders.Loader(
        extra_search_paths=list(search_paths), include_default_search_paths=False
    )
    model: dict[str, Any] = loader.load_service_model(SERVICE_NAME, "service-2")
    return model


def lacks_extra_operations(search_paths: Sequence[str]) -> bool:
    """Whether the model a loader with these search paths loads (without the shipped folder)
    lacks any of EXTRA_OPERATIONS. Reads with a loader of its own: botocore's caches."""
    ours = str(DATA_PATH)
    operations = _load([p for p in search_paths if p != ours])["operations"]
    return any(name not in operations for name in EXTRA_OPERATIONS)


def add_extras(loader: Any) -> bool:
    """Put the shipped extras first on `loader`'s search path (a botocore Loader, e.g. a
    session's `data_loader`) if its model lacks an operation; True when they are on it.

    Call before anything loads the Connect Cases model through `loader`: it caches what it read.
    """
    paths: list[str] = loader.search_paths
    if str(DATA_PATH) in paths:
        return True
    if not lacks_extra_operations(paths):
        return False
    paths.insert(0, str(DATA_PATH))
    return True


def installed_model() -> dict[str, Any]:
    """The `service-2` JSON as the installed botocore has it, without the shipped extras."""
    return _load(botocore.loaders.Loader().search_paths)


@functools.cache
def service_model() -> dict[str, Any]:
    """The raw `service-2` JSON for Connect Cases (shapes, operations, metadata), with the
    shipped extras when the installed botocore lacks their operations."""
    loader = botocore.loaders.create_loader()
    add_extras(loader)
    loaded: dict[str, Any] = loader.load_service_model(SERVICE_NAME, "service-2")
    return loaded
