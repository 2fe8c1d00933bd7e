"""Fields: a record's columns -> the domain's fields, its values -> UpdateCase's value union,
and the job file's column mapping; a row to send, or a local failure with its reason.

Pure (no I/O). May import `input` and the core; never `run`, `report`, `aws` or `checkpoint`.
"""
