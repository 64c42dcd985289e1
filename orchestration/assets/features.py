"""dbt assets: staging, features and marts built in DuckDB, with dbt tests surfacing as asset checks."""


import json
import os
from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.resources import DBT_PROJECT_DIR, PipelineSettings

# Folders under models/ mapped to the asset groups stakeholders see in the lineage.
GROUP_BY_FOLDER = {"staging": "ingest", "intermediate": "features", "features": "features", "marts": "features",
                   "kpi": "kpis"}
# The dbt models that read tables the Python assets write; they run in their own step after those assets.
KPI_SELECTION = "tag:kpi"
GROUP_BY_NAME = {"tier_policy": "territories", "seed_tier_policy": "territories", "rejected_rows": "ingest",
                 "input_row_counts": "ingest"}


def dbt_project() -> DbtProject:
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class TerritoryDbtTranslator(DagsterDbtTranslator):
    """Raw sources keep the ingest asset keys, pipeline sources the Python assets' keys; models group by folder."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        meta = dbt_resource_props.get("config", {}).get("meta") or dbt_resource_props.get("meta") or {}
        if "asset_key" in meta.get("dagster", {}):
            # Sources written by Python assets name that asset (the `pipeline` source).
            return super().get_asset_key(dbt_resource_props)
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        name = dbt_resource_props["name"]
        if name in GROUP_BY_NAME:
            return GROUP_BY_NAME[name]
        fqn = dbt_resource_props.get("fqn", [])
        # The innermost mapped folder wins: marts/kpi is `kpis`, marts is `features`.
        for folder in reversed(fqn[1:-1]):
            if folder in GROUP_BY_FOLDER:
                return GROUP_BY_FOLDER[folder]
        return "features"


def dbt_vars(settings: PipelineSettings) -> dict[str, Any]:
    policy = settings.load_policy()
    variables: dict[str, Any] = {"engagement_half_life_days": policy.scoring.engagement_half_life_days,
                                 "kpi_window_days": policy.operations.kpi_window_days,
                                 "exclude_attributes": policy.scoring.exclude_attributes}
    if policy.scoring.as_of_date is not None:
        variables["as_of_date"] = policy.scoring.as_of_date.isoformat()
    return variables


def _build(context: AssetExecutionContext, dbt: DbtCliResource, settings: PipelineSettings):
    # dbt runs in a subprocess that inherits the environment; profiles.yml reads the path from it.
    os.environ["TERRITORY_WAREHOUSE"] = str(settings.warehouse_path)
    args = ["build", "--vars", json.dumps(dbt_vars(settings))]
    yield from dbt.cli(args, context=context).stream()


def build_dbt_assets(project: DbtProject) -> list:
    """The dbt assets, built from the manifest prepared by `territory prepare` (never parsed here).

    Two steps: the CRM models (staging, features) before scoring, and the KPI marts after the Python assets
    whose tables they read (scores, territories, SLA). One multi-asset holding both would be a cycle.
    """
    translator = TerritoryDbtTranslator()

    @dbt_assets(manifest=project.manifest_path, project=project, dagster_dbt_translator=translator,
                exclude=KPI_SELECTION)
    def crm_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, settings: PipelineSettings):
        yield from _build(context, dbt, settings)

    @dbt_assets(manifest=project.manifest_path, project=project, dagster_dbt_translator=translator,
                select=KPI_SELECTION)
    def kpi_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, settings: PipelineSettings):
        yield from _build(context, dbt, settings)

    return [crm_dbt_models, kpi_dbt_models]
