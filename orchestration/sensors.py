"""The inbox sensor: lead files dropped into data/inbox/ are routed by a run of `route_inbox`, then filed in done/."""


from pathlib import Path

from dagster import (
    AssetObservation,
    Config,
    DefaultSensorStatus,
    MetadataValue,
    OpExecutionContext,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    job,
    op,
    sensor,
)

from orchestration.resources import PipelineSettings
from orchestration.routing import inbox_files, move_to_done, route_file

ROUTE_INBOX_JOB = "route_inbox"


class InboxFile(Config):
    path: str


@op(description="Route one lead file to owners and append the decisions to routing_decisions.")
def route_inbox_file(context: OpExecutionContext, config: InboxFile, settings: PipelineSettings) -> None:
    source = Path(config.path)
    decisions = route_file(settings, source, run_id=context.run.run_id)
    done = move_to_done(settings, source)
    # An observation, not a materialization: the audit table grew, the plan asset did not change.
    context.log_event(AssetObservation(asset_key="routing_decisions", metadata={
        "source_file": MetadataValue.path(str(done)),
        "leads": MetadataValue.int(len(decisions)),
        "by_rep": MetadataValue.json({str(k): int(v) for k, v in decisions["rep_id"].value_counts().items()}),
    }))
    context.log.info(f"routed {len(decisions)} leads from {source.name}; file moved to {done}")


@job(name=ROUTE_INBOX_JOB, description="Route a lead file from the inbox and file it in inbox/done/.")
def route_inbox() -> None:
    route_inbox_file()


@sensor(job=route_inbox, minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED,
        description="Starts a routing run for every lead file (CSV or JSON lines) dropped into data/inbox/.")
def inbox_sensor(context: SensorEvaluationContext, settings: PipelineSettings):
    files = inbox_files(settings)
    if not files:
        return SkipReason(f"no lead files in {settings.inbox_dir}")
    # Name, size and modification time: a file dropped again under the same name is a new request.
    return [
        RunRequest(
            run_key=f"{path.name}:{path.stat().st_size}:{path.stat().st_mtime_ns}",
            run_config={"ops": {"route_inbox_file": {"config": {"path": str(path)}}}},
        )
        for path in files
    ]
