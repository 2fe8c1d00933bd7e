"""The AWS edge: the only package that imports botocore or aiobotocore.

Everything else talks to Connect Cases through what this package exposes.
"""
