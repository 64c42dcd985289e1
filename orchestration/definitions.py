"""The one Definitions object: assets, checks, jobs, their schedules, the inbox sensor and resources."""

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
from orchestration.assets.forecasts import score_history
from orchestration.assets.ingest import raw_export
from orchestration.assets.monitors import monitors
from orchestration.assets.operations import monitor_sla, rebalance_proposals
from orchestration.assets.publish import analytics_copy
from orchestration.assets.report import territory_report
from orchestration.assets.scoring import account_scoring
from orchestration.assets.territories import territory_plan, territory_scenarios
from orchestration.checks import CHECKS
from orchestration.progress import step_progress_logger
from orchestration.resources import PipelineSettings
from orchestration.sensors import inbox_sensor, route_inbox

FULL_PIPELINE_JOB = "full_pipeline"
REBALANCE_REVIEW_JOB = "rebalance_review"
RECALIBRATION_JOB = "recalibration"


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
    rebalance_review = define_asset_job(
        REBALANCE_REVIEW_JOB,
        # Whole multi-assets: the monitors step computes drift and coverage together.
        selection=AssetSelection.assets("monitor_score_drift", "monitor_coverage", "monitor_sla", "sla_breaches",
                                        "rebalance_proposals", "territory_report"),
        description="Monthly review: coverage and SLA monitors, a rebalance proposal if needed, the report.",
    )
    recalibration = define_asset_job(
        RECALIBRATION_JOB,
        selection=AssetSelection.groups("scoring").downstream(),
        description="Quarterly: retrain and recalibrate the scoring models, then re-tier, monitor and propose a "
                    "rebalance on the new scores.",
    )
    return Definitions(
        assets=[raw_export, *build_dbt_assets(project), account_scoring, score_history, territory_plan,
                territory_scenarios, monitors, analytics_copy, monitor_sla, rebalance_proposals, territory_report],
        asset_checks=CHECKS,
        jobs=[full_pipeline, rebalance_review, recalibration, route_inbox],
        schedules=[
            ScheduleDefinition(
                name="nightly_full_pipeline",
                job=full_pipeline,
                cron_schedule="0 2 * * *",
                default_status=DefaultScheduleStatus.STOPPED,
                # Nightly runs score with the champion; challengers train on the quarterly schedule.
                run_config={"ops": {"account_scoring": {"config": {"train_challenger": False}}}},
                description="Nightly: re-ingest the export, rebuild features, rescore with the champion, replan and monitor.",
            ),
            ScheduleDefinition(
                name="monthly_rebalance_review",
                job=rebalance_review,
                cron_schedule="0 6 1 * *",
                default_status=DefaultScheduleStatus.STOPPED,
                description="First of the month, 06:00: coverage review and a rebalance proposal for a person to apply.",
            ),
            ScheduleDefinition(
                name="quarterly_recalibration",
                job=recalibration,
                cron_schedule="0 4 1 1,4,7,10 *",
                default_status=DefaultScheduleStatus.STOPPED,
                description="First day of each quarter, 04:00: train a challenger, promote it if its held-out "
                            "log loss is not worse than the champion's.",
            ),
        ],
        sensors=[inbox_sensor],
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
