"""Batching (`--batch auto`): rows at the head of their case's lane that set the same values go
together as one BatchUpdateCase call. The pure planner (`grouping`), the request and its
per-case answers (`request`, `verdicts`), the task that hands out groups and lone rows
(`grouper`), the sending of a group (`sender`) and the re-sending of groups a killed run
recorded (`replay`).

Part of `run`: may import what `run` may, and `run.cases`/`run.settings`; never `run.engine`.
"""
