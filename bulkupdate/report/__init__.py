"""Report: what a run tells people. The run's counters, progress bar and events, Prometheus
metrics, structlog set-up, the failures file and summary (local or S3), and `status`.

Presentation: reads counters and checkpoints, never changes a run. May import `aws`,
`checkpoint`, `fields`, `input` and the core; never `run`, `cli` or `demo`.
"""
