"""Prometheus metrics of a run, served by prometheus-client on `--metrics-port`.

Read-only and off the hot path: a collector reads the run's counters when scraped (from the
server's thread); the engine never calls into this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from bulkupdate.report.progress import RunView
from bulkupdate.report.stats import LATENCY_BUCKETS_S

log = structlog.get_logger("bulkupdate")

# Row outcomes this run, by the RunStats counter that holds them.
OUTCOMES = {
    "applied": "applied",
    "failed": "failed",
    "unchanged": "unchanged",
    "skipped": "skipped",
}


# (metric, help, key of the run's progress snapshot)
COUNTERS = (
    ("bulkupdate_updatecase_calls", "UpdateCase attempts", "calls"),
    ("bulkupdate_throttles", "ThrottlingException answers", "throttles"),
    ("bulkupdate_retries", "Attempts after a row's first", "retried"),
    ("bulkupdate_getcase_calls", "GetCase reads before writes (--before-images)", "reads"),
    ("bulkupdate_getcase_throttles", "GetCase calls throttled", "read_throttles"),
    ("bulkupdate_batchupdatecase_calls", "BatchUpdateCase calls (--batch auto)", "batch_calls"),
    ("bulkupdate_batch_cases", "Cases listed in BatchUpdateCase calls", "batch_cases"),
    ("bulkupdate_batch_throttles", "BatchUpdateCase calls throttled whole", "batch_throttles"),
    (
        "bulkupdate_batch_cases_failed",
        "Cases a BatchUpdateCase answer failed",
        "batch_cases_failed",
    ),
    ("bulkupdate_case_throttles", "Cases a BatchUpdateCase answered THROTTLED", "case_throttles"),
    (
        "bulkupdate_case_retries",
        "Cases a BatchUpdateCase answered CONFLICT or INTERNAL_ERROR (sent again)",
        "case_retries",
    ),
    ("bulkupdate_groups_split", "Groups refused whole and split to isolate a row", "groups_split"),
)
# Only with --match-field: the lookup's searches and the keys they settled.
LOOKUP_COUNTERS = (
    ("bulkupdate_searchcases_calls", "SearchCases calls finding rows' cases", "searches"),
    ("bulkupdate_search_throttles", "SearchCases ThrottlingException answers", "search_throttles"),
    ("bulkupdate_keys_found", "Keys that matched one case", "keys_found"),
    ("bulkupdate_keys_not_found", "Keys that matched no case", "keys_not_found"),
    ("bulkupdate_keys_ambiguous", "Keys that matched several cases", "keys_ambiguous"),
)
GAUGES = (
    ("bulkupdate_rate_per_second", "Current adaptive UpdateCase rate", "rate_per_s"),
    (
        "bulkupdate_share_per_second",
        "Most UpdateCase calls/s the job sends: --rate less the --headroom left to agents",
        "share_per_s",
    ),
    (
        "bulkupdate_yielding",
        "1 while throttled within its share: others use more than the headroom",
        "yielding",
    ),
    ("bulkupdate_in_flight", "UpdateCase calls in flight", "in_flight"),
    (
        "bulkupdate_batch_rate_per_second",
        "Current adaptive BatchUpdateCase rate",
        "batch_rate_per_s",
    ),
    ("bulkupdate_rows_done", "Rows resolved over all runs of the job", "rows_done"),
    ("bulkupdate_rows_left", "Rows of the input not resolved yet", "rows_left"),
    ("bulkupdate_rows_held", "Rows whose case waits for a call that may still land", "held"),
    ("bulkupdate_outage", "1 while the service is taken to be out (probing only)", "outage"),
)


class RunCollector(Collector):
    """Reads the attached RunView on each scrape; before the engine starts it reports nothing
    but `bulkupdate_up` so a scrape during start-up still answers."""

    def __init__(self, job: str, run_id: str) -> None:
        self.view: RunView | None = None
        self._labels = {"job_name": job, "run_id": run_id}

    def collect(self) -> Iterator[Any]:
        labels = list(self._labels)
        values = list(self._labels.values())
        yield _family(
            GaugeMetricFamily, "bulkupdate_up", "1 while the run is going", labels, values, 1
        )
        view = self.view
        if view is None:
            return
        try:
            data = view.snapshot()
        except (IndexError, RuntimeError):  # read mid-change from this thread: try once more
            data = view.snapshot()
        rows = CounterMetricFamily(
            "bulkupdate_rows", "Rows resolved by this run, by outcome", labels=[*labels, "outcome"]
        )
        for outcome, key in OUTCOMES.items():
            rows.add_metric([*values, outcome], data[key])
        yield rows
        for name, doc, key in COUNTERS:
            yield _family(CounterMetricFamily, name, doc, labels, values, data[key])
        for name, doc, key in LOOKUP_COUNTERS:
            if key in data:
                yield _family(CounterMetricFamily, name, doc, labels, values, data[key])
        for name, doc, key in GAUGES:
            if data[key] is not None:  # rows_left: unknown for stdin, S3 and shards
                yield _family(GaugeMetricFamily, name, doc, labels, values, data[key])
        stats = view.engine.stats
        counts, cumulative, buckets = list(stats.latency_counts), 0, []
        for bound_s, count in zip((*LATENCY_BUCKETS_S, float("inf")), counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound_s == float("inf") else str(bound_s), cumulative))
        latency = HistogramMetricFamily(
            "bulkupdate_updatecase_latency_seconds",
            "UpdateCase latency, send to answer",
            labels=labels,
        )
        latency.add_metric(values, buckets, stats.latency_sum_s)
        yield latency


def _family(
    kind: Any, name: str, doc: str, labels: list[str], values: list[str], value: float
) -> Any:
    family = kind(name, doc, labels=labels)
    family.add_metric(values, value)
    return family


class MetricsServer:
    """The /metrics endpoint of one run; `close` stops it."""

    def __init__(self, port: int, job: str, run_id: str) -> None:
        registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        self.collector = RunCollector(job, run_id)
        registry.register(self.collector)
        self._server, self._thread = start_http_server(port, registry=registry)
        self.port = int(self._server.server_port)
        log.info("metrics_serving", port=self.port, path="/metrics")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
