"""The one resource every asset shares: where the input, warehouse and policy are, and DuckDB access."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource

from ml.policy import Policy, load_policy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DEFAULT_WAREHOUSE = "data/warehouse.duckdb"


class PipelineSettings(ConfigurableResource):
    """Where a run reads its export and writes its warehouse.

    With no `input_dir` the run generates (once, then reuses) the built-in synthetic export.
    Relative paths are taken from the project root, so the UI and the CLI agree.
    """

    input_dir: str | None = None
    warehouse: str = DEFAULT_WAREHOUSE
    policy_file: str | None = None
    synthetic_accounts: int = 5000
    synthetic_seed: int = 7

    @classmethod
    def from_env(cls) -> PipelineSettings:
        """Settings for `dagster dev`: TERRITORY_INPUT, TERRITORY_WAREHOUSE, TERRITORY_POLICY when set."""
        return cls(
            input_dir=os.environ.get("TERRITORY_INPUT") or None,
            warehouse=os.environ.get("TERRITORY_WAREHOUSE") or DEFAULT_WAREHOUSE,
            policy_file=os.environ.get("TERRITORY_POLICY") or None,
        )

    def _resolve(self, path: str) -> Path:
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else PROJECT_ROOT / candidate

    @property
    def warehouse_path(self) -> Path:
        return self._resolve(self.warehouse)

    @property
    def data_dir(self) -> Path:
        """Reports, published copies and generated inputs live beside the warehouse."""
        return self.warehouse_path.parent

    @property
    def analytics_path(self) -> Path:
        return self.data_dir / "analytics.duckdb"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def champion_path(self) -> Path:
        """The last scoring run's model, which `territory route` and the inbox sensor score new leads with."""
        return self.data_dir / "models" / "champion.joblib"

    @property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"

    def synthetic_dir(self) -> Path:
        return self.data_dir / "inputs" / f"synthetic_{self.synthetic_accounts}_seed{self.synthetic_seed}"

    def resolved_input_dir(self) -> Path | None:
        return self._resolve(self.input_dir) if self.input_dir else None

    def load_policy(self) -> Policy:
        return load_policy(self._resolve(self.policy_file) if self.policy_file else None)

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The single writing connection; closed on exit so dbt or the next asset can write."""
        self.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.warehouse_path))
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb.connect(str(self.warehouse_path), read_only=True)
        try:
            yield con
        finally:
            con.close()
