"""bulkupdate: apply CSV/JSONL rows to Amazon Connect Cases with UpdateCase, paced and resumable."""

__version__ = "0.1.0"
