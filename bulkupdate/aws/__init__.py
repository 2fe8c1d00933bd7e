"""The AWS edge: the only package that imports botocore or aiobotocore. The Connect Cases client
(implementing `run.cases.CasesApi`, BatchUpdateCase included: `model` adds the shipped model
extras in `data/` when botocore lacks it), S3 reads and uploads, the DynamoDB checkpoint store.

May import `checkpoint` (the store seam and item format) and the core; never `config`, `run`,
`report`, `cli` or `demo`. Everything else talks to AWS through what this package exposes.
"""
