"""Assets by domain: ingest, features (dbt), scoring, territories, monitors, publish."""
