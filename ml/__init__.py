"""Pure-Python core of the territory planner: loading, scoring, territories and monitors (no Dagster)."""
