"""Dagster orchestration of the territory planner: assets, checks, schedules and the `territory` CLI."""
