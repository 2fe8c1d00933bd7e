"""The Connect Cases service model as botocore ships it, read once, handed out as plain data.

No network. The emulator validates requests against this, so its limits follow botocore's.
"""

from __future__ import annotations

import functools
from typing import Any

import botocore.loaders

SERVICE_NAME = "connectcases"


@functools.cache
def service_model() -> dict[str, Any]:
    """The raw `service-2` JSON for Connect Cases (shapes, operations, metadata)."""
    loaded: dict[str, Any] = botocore.loaders.create_loader().load_service_model(
        SERVICE_NAME, "service-2"
    )
    return loaded
