"""Model versions: every trained scoring model with its data window, features and metrics; one champion.

Files live in one folder beside the warehouse: `versions/<model_version>.joblib` per model and
`registry.json` with one entry per version (oldest first) and the promotion history. The champion is also
copied to `champion.joblib`, which routing reads. Nothing here imports Dagster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import joblib

from ml.routing import save_champion
from ml.scoring import ChampionModel

CHAMPION, CHALLENGER, RETIRED = "champion", "challenger", "retired"


@dataclass(frozen=True)
class ModelRegistry:
    root: Path

    @property
    def _index(self) -> Path:
        return self.root / "registry.json"

    @property
    def champion_path(self) -> Path:
        return self.root / "champion.joblib"

    def _model_path(self, version: str) -> Path:
        return self.root / "versions" / f"{version}.joblib"

    def versions(self) -> list[dict]:
        """Every recorded version, oldest first, each with status, data window, features and metrics."""
        if not self._index.exists():
            return []
        return json.loads(self._index.read_text())["versions"]

    def _write(self, versions: list[dict]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self._index.with_suffix(".tmp")
        staging.write_text(json.dumps({"versions": versions}, indent=2, default=str) + "\n")
        staging.replace(self._index)

    def record(self, model: ChampionModel, info: dict) -> dict:
        """Keep a newly trained model as a challenger; `info` holds its data window, features and metrics."""
        path = self._model_path(model.model_version)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, path)
        entry = {"model_version": model.model_version, "status": CHALLENGER, **info, "history": []}
        self._write([v for v in self.versions() if v["model_version"] != model.model_version] + [entry])
        return entry

    def champion_entry(self) -> dict | None:
        return next((v for v in self.versions() if v["status"] == CHAMPION), None)

    def load(self, version: str) -> ChampionModel:
        path = self._model_path(version)
        if not path.exists():
            known = [v["model_version"] for v in self.versions()]
            raise ValueError(f"model version {version} is not in {self._index}; known versions: {known}")
        return joblib.load(path)

    def champion(self) -> ChampionModel | None:
        entry = self.champion_entry()
        return self.load(entry["model_version"]) if entry else None

    def promote(self, version: str, reason: str) -> dict:
        """Make `version` the champion (the previous one retires) and say why in both histories."""
        model = self.load(version)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        versions = self.versions()
        for entry in versions:
            if entry["status"] == CHAMPION and entry["model_version"] != version:
                entry["status"] = RETIRED
                entry["history"].append({"at": now, "event": f"retired: {version} promoted"})
            if entry["model_version"] == version:
                entry["status"] = CHAMPION
                entry["history"].append({"at": now, "event": f"promoted: {reason}"})
        save_champion(model, self.champion_path)
        self._write(versions)
        return next(v for v in versions if v["model_version"] == version)


# Relative log-loss gap below which two models tie: the scoring pass sums contributions in float32, the champion's
# re-scoring in float64, so one model scored both ways differs around the seventh digit.
LOG_LOSS_TIE = 1e-6


def challenger_wins(challenger_log_loss: float, champion_log_loss: float) -> bool:
    """A challenger replaces the champion only when its held-out log loss is not worse (ties promote)."""
    return challenger_log_loss <= champion_log_loss * (1 + LOG_LOSS_TIE)
