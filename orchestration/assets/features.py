"""dbt assets: staging, features and marts built in DuckDB, with dbt tests surfacing as asset checks."""


import json
import os
from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.resources import DBT_PROJECT_DIR, PipelineSettings

# Folders under models/ mapped to the asset groups stakeholders see in the lineage.
GROUP_BY_FOLDER = {"staging": "ingest", "intermediate": "features", "features": "features", "marts": "features"}
GROUP_BY_NAME = {"tier_policy": "territories", "seed_tier_policy": "territories", "rejected_rows": "ingest",
                 "input_row_counts": "ingest"}


def dbt_project() -> DbtProject:
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class TerritoryDbtTranslator(DagsterDbtTranslator):
    """Raw sources keep the ingest asset keys; models are grouped by folder."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        name = dbt_resource_props["name"]
        if name in GROUP_BY_NAME:
            return GROUP_BY_NAME[name]
        fqn = dbt_resource_props.get("fqn", [])
        for folder in fqn[1:-1]:
            if folder in GROUP_BY_FOLDER:
                return GROUP_BY_FOLDER[folder]
        return "features"


def dbt_vars(settings: PipelineSettings) -> dict[str, Any]:
    policy = settings.load_policy()
    variables: dict[str, Any] = {"engagement_half_life_days": policy.scoring.engagement_half_life_days}
    if policy.scoring.as_of_date is not None:
        variables["as_of_date"] = policy.scoring.as_of_date.isoformat()
    return variables


def build_dbt_assets(project: DbtProject):
    """The dbt assets, built from the manifest prepared by `territory prepare` (never parsed here)."""

    @dbt_assets(manifest=project.manifest_path, project=project, dagster_dbt_translator=TerritoryDbtTranslator())
    def crm_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, settings: PipelineSettings):
        # dbt runs in a subprocess that inherits the environment; profiles.yml reads the path from it.
        os.environ["TERRITORY_WAREHOUSE"] = str(settings.warehouse_path)
        args = ["build", "--vars", json.dumps(dbt_vars(settings))]
        yield from dbt.cli(args, context=context).stream()

    return crm_dbt_models
