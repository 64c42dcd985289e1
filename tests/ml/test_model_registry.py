"""Tests for ml.model_registry: versions are kept, one champion at a time, promotion and roll-back by hand."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest

from ml.model_registry import ModelRegistry, challenger_wins
from ml.policy import TierPolicy
from ml.scoring import ChampionModel
from orchestration.cli import main


def model(version: str, base_rate: float) -> ChampionModel:
    return ChampionModel(version, {}, None, base_rate, np.array([base_rate]), TierPolicy())


def info(log_loss: float) -> dict:
    return {"data_window": {"from": "2025-01-01", "to": "2025-06-30"}, "features": ["fit_x"],
            "test_metrics": {"log_loss": log_loss}}


def test_promoting_a_challenger_and_rolling_back(tmp_path: Path, capsys) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.record(model("v1", 0.2), info(0.45))
    registry.promote("v1", "first model")
    registry.record(model("v2", 0.3), info(0.44))
    assert registry.champion_entry()["model_version"] == "v1"
    registry.promote("v2", "held-out log loss 0.44 vs 0.45")
    assert [(v["model_version"], v["status"]) for v in registry.versions()] == [("v1", "retired"), ("v2", "champion")]
    assert joblib.load(registry.champion_path).model_version == "v2"

    # Roll back through the command line, as a person would.
    assert main(["model", "promote", "v1", "--warehouse", str(tmp_path / "warehouse.duckdb")]) == 0
    assert registry.champion().model_version == "v1"
    assert joblib.load(registry.champion_path).base_rate == 0.2
    v1, v2 = registry.versions()
    assert (v1["status"], v2["status"]) == ("champion", "retired")
    assert [event["event"].split(":")[0] for event in v1["history"]] == ["promoted", "retired", "promoted"]
    assert v1["data_window"]["to"] == "2025-06-30" and v1["features"] == ["fit_x"]
    assert main(["model", "list", "--warehouse", str(tmp_path / "warehouse.duckdb")]) == 0
    listed = capsys.readouterr().out
    assert "v1" in listed and "champion" in listed and "retired" in listed


def test_unknown_versions_are_refused_and_ties_promote(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    with pytest.raises(ValueError, match="model version v9 is not in"):
        registry.promote("v9", "by hand")
    assert challenger_wins(0.40, 0.40) and challenger_wins(0.39, 0.40) and not challenger_wins(0.41, 0.40)
    # The same model scored in float32 and re-scored in float64 ties (seen: 0.4346696 vs 0.4346692) ...
    assert challenger_wins(0.43466956, 0.43466923)
    # ... while a worse model a thousandth of the loss away does not.
    assert not challenger_wins(0.4351, 0.4346)
