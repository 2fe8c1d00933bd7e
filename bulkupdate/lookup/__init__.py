"""Lookup: between the source and the per-case lanes, finds each row's case by a value of the
match field (`--match-field`) with SearchCases, reading ahead of the writers, and records what
it found in the checkpoint so a resumed run does not search again.

`keys` (the match field and its keys) and `plan` (which keys to search, what the answers
decide) are pure; `resolver` is the async stage, which sleeps only through the Clock. May
import `checkpoint`, `pacing`, `fields`, `input` and the core; never `aws`, `report` or `run`.
"""
