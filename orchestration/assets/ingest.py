"""Ingest assets: the CRM export (or the synthetic default) validated into the warehouse's raw schema."""

from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, MetadataValue, multi_asset

from ml.contract import TABLES
from ml.ingest import RAW_SCHEMA, load_export
from ml.synthetic import generate_export
from orchestration.resources import PipelineSettings

RAW_TABLES = [t.name for t in TABLES] + ["account_attributes", "load_manifest"]
RAW_KEYS = {name: AssetKey([RAW_SCHEMA, name]) for name in RAW_TABLES}

_DESCRIPTIONS = {
    "account_attributes": "Extra account columns (outside the contract) as long rows; they become fit features.",
    "load_manifest": "Which contract files the run read and how many rows each had.",
}


def ensure_synthetic_input(settings: PipelineSettings) -> str:
    """Generate the built-in synthetic export once and reuse it on later runs."""
    folder = settings.synthetic_dir()
    if not (folder / "accounts.parquet").exists():
        generate_export(folder, n_accounts=settings.synthetic_accounts, seed=settings.synthetic_seed)
    return str(folder)


@multi_asset(
    specs=[
        AssetSpec(
            key,
            group_name="ingest",
            description=_DESCRIPTIONS.get(name, f"The export's {name} file, every contract column as text."),
            kinds={"duckdb"},
        )
        for name, key in RAW_KEYS.items()
    ],
)
def raw_export(context: AssetExecutionContext, settings: PipelineSettings):
    """Read the export folder, stop on fatal problems, and replace the raw schema."""
    input_dir = settings.resolved_input_dir()
    source = str(input_dir) if input_dir else ensure_synthetic_input(settings)
    result = load_export(source, settings.warehouse_path)
    for note in result.notes:
        context.log.info(note)
    for name, key in RAW_KEYS.items():
        load = result.tables.get(name)
        metadata = {"input_folder": MetadataValue.path(source)}
        if load is not None:
            metadata["input_rows"] = MetadataValue.int(load.input_rows)
            metadata["source_file"] = MetadataValue.text(load.source_file or "absent")
        yield MaterializeResult(asset_key=key, metadata=metadata)
