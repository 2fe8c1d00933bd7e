"""Checkpoint: what a job has resolved, committed in whole batches so any run can resume. The
`CheckpointStore` seam, the SQLite store and its run lock, the DynamoDB store's item format,
and where checkpoints live.

May import the core only; the DynamoDB store itself is in `aws`, which imports this package.
"""
