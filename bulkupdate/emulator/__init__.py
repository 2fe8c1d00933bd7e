"""A local Amazon Connect Cases service that behaves like the real one on the wire.

`running_emulator(config)` serves it in-process; `bulkupdate emulator` serves it as a command.
A service of its own: it imports nothing of the product but botocore's model (`aws.model`).
"""

from bulkupdate.emulator.config import EmulatorConfig, no_quotas
from bulkupdate.emulator.faults import FaultConfig
from bulkupdate.emulator.quotas import DEFAULT_QUOTAS, Quota
from bulkupdate.emulator.records import DateTimeEncoding
from bulkupdate.emulator.server import Emulator, running_emulator

__all__ = [
    "DEFAULT_QUOTAS",
    "DateTimeEncoding",
    "Emulator",
    "EmulatorConfig",
    "FaultConfig",
    "Quota",
    "no_quotas",
    "running_emulator",
]
