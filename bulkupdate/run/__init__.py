"""Run: one `bulkupdate run` (or dry run) end to end. Start-up reads of the domain, the engine
(per-case lanes, workers, retries, batched commits), choosing the checkpoint store, the
CasesApi seam the engine calls, and the process's SIGINT/SIGTERM (`signals`).

Orchestration: may import every stage below it (`report`, `aws`, `checkpoint`, `pacing`,
`fields`, `input`) and `config`; never `cli`, `demo` or `undo`. Never imports botocore itself.
"""
