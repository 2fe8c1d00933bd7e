"""Shards: which rows of a job one process applies, when a job is spread over several
(Kubernetes Indexed Jobs, AWS Batch array jobs). A stable hash of the case id picks the shard,
so all rows of a case land in one shard and keep their order.

Pure: stdlib only. The index may come from the runner's environment.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

# Where runners put a task's index (0-based) when the flag leaves it out.
INDEX_VARIABLES = ("JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # 0-based, as runners count
    count: int

    @property
    def label(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def owns(self, case_id: str) -> bool:
        """Whether this shard applies the rows of `case_id`: CRC-32 of its UTF-8 bytes, mod count.

        CRC-32 is stable across processes, machines and Python versions (str hash() is not).
        """
        return zlib.crc32(case_id.encode("utf-8", "surrogatepass")) % self.count == self.index

    def owns_caseless(self) -> bool:
        """Records with no case id (unreadable ones) are reported by shard 0 alone."""
        return self.index == 0

    def rate_share(self, rate_per_s: float, burst: int) -> tuple[float, int]:
        """This shard's part of the job's rate and burst: the quota is shared by all shards."""
        return rate_per_s / self.count, max(1, math.ceil(burst / self.count))

    def name(self, path: str) -> str:
        """`out/crm.failures.csv` -> `out/crm.shard-1-of-3.failures.csv`: one file per shard.

        The label goes before the first suffix, so `.failures.csv.gz` stays together."""
        folder, slash, name = path.rpartition("/")  # works for s3:// URLs too
        stem, dot, rest = name.partition(".")
        return f"{folder}{slash}{stem}.{self.label}{dot}{rest}"


def parse_shard(text: str, env: Mapping[str, str]) -> Shard:
    """`INDEX/COUNT`, or `COUNT` (or `/COUNT`) with the index from JOB_COMPLETION_INDEX or
    AWS_BATCH_JOB_ARRAY_INDEX. Raises ValueError saying what is wrong."""
    index_text, slash, count_text = text.strip().rpartition("/")
    if not slash:
        index_text, count_text = "", text.strip()
    try:
        count = int(count_text)
    except ValueError:
        raise ValueError("must be INDEX/COUNT, e.g. 0/3") from None
    if count < 1:
        raise ValueError("COUNT must be at least 1")
    source = "INDEX"
    if not index_text:
        found = [(name, env[name]) for name in INDEX_VARIABLES if env.get(name, "").strip()]
        if not found:
            raise ValueError(f"has no INDEX and none of {', '.join(INDEX_VARIABLES)} is set")
        source, index_text = found[0]
    try:
        index = int(index_text)
    except ValueError:
        raise ValueError(f"{source} {index_text!r} is not a whole number") from None
    if not 0 <= index < count:
        raise ValueError(f"{source} {index} is not in 0..{count - 1}")
    return Shard(index, count)
