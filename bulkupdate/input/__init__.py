"""Input: reading a CSV or JSONL export (file, stdin or S3 stream) as records with their byte
offsets and lines, so a run can resume mid-file; and the fingerprint that names an input.

May import only the core (`errors`, `models`). Knows nothing of fields, pacing or checkpoints.
"""
