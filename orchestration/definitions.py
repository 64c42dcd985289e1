"""The one Definitions object: assets, checks, the full-pipeline job, its nightly schedule and resources."""

from __future__ import annotations

import sys
from pathlib import Path

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    ScheduleDefinition,
    colored_console_logger,
    define_asset_job,
    definitions,
    in_process_executor,
)
from dagster_dbt import DbtCliResource

from orchestration.assets.features import build_dbt_assets, dbt_project
from orchestration.assets.ingest import raw_export
from orchestration.assets.monitors import monitors
from orchestration.assets.publish import analytics_copy
from orchestration.assets.scoring import account_scoring
from orchestration.assets.territories import territory_plan
from orchestration.checks import CHECKS
from orchestration.progress import step_progress_logger
from orchestration.resources import PipelineSettings

FULL_PIPELINE_JOB = "full_pipeline"


def build_definitions(settings: PipelineSettings) -> Definitions:
    """Everything the UI and `territory run` execute; the dbt manifest must already be prepared."""
    project = dbt_project()
    if not project.manifest_path.exists():
        raise FileNotFoundError(
            f"dbt manifest {project.manifest_path} is missing: run `territory prepare` (or `make install`) first"
        )
    full_pipeline = define_asset_job(
        FULL_PIPELINE_JOB,
        selection=AssetSelection.all(),
        description="Ingest, features, scoring, territories, monitors and the analyst copy, in one run.",
    )
    return Definitions(
        assets=[raw_export, build_dbt_assets(project), account_scoring, territory_plan, monitors, analytics_copy],
        asset_checks=CHECKS,
        jobs=[full_pipeline],
        schedules=[
            ScheduleDefinition(
                name="nightly_full_pipeline",
                job=full_pipeline,
                cron_schedule="0 2 * * *",
                default_status=DefaultScheduleStatus.STOPPED,
                description="Nightly: re-ingest the export, rebuild features, rescore, replan and monitor.",
            )
        ],
        resources={
            "settings": settings,
            "dbt": DbtCliResource(
                project_dir=project,
                profiles_dir=str(project.profiles_dir),
                # The venv's dbt, so runs work without the venv being activated.
                dbt_executable=str(Path(sys.executable).with_name("dbt")),
            ),
        },
        loggers={"console": colored_console_logger, "progress": step_progress_logger},
        # DuckDB has a single writer: steps run one after another in one process.
        executor=in_process_executor,
    )


@definitions
def defs() -> Definitions:
    return build_definitions(PipelineSettings.from_env())
