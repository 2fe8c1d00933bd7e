"""Working stand-ins for the product's seams (Clock, CasesApi, CheckpointStore), for tests only.

Each keeps the seam's contract with plain in-process state; the product never imports them.
"""
