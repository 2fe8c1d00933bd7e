"""Undo: after a job run with --before-images, `bulkupdate verify` reports the fields changed
since the job wrote them, and `bulkupdate undo` puts back the values they held before it, by
running the restores as a job of their own through the engine.

`jobimages` (a job's before-images, every shard's, and the connection to its domain), `verify`,
`restore` (the undo plan and its run) and `commands` (their arguments). May import `run` and
every stage below it; never `cli` or `demo`. Never imports botocore itself.
"""
