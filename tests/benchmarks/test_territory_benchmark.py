"""Tests for the territory benchmark's instance handling: map names and generated rep homes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from territories import instance_name, reps_for

from ml.territories import great_circle_km


def to_xyz(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    phi, lam = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])


def _args(**given) -> argparse.Namespace:
    defaults = {"input": None, "accounts": 400, "seed": 1, "tolerance": 0.05, "potential_column": "revenue"}
    return argparse.Namespace(**{**defaults, **given})


def test_map_names_tell_instances_apart():
    names = {
        instance_name(_args(), 8),
        instance_name(_args(seed=2), 8),
        instance_name(_args(accounts=500), 8),
        instance_name(_args(), 10),
        instance_name(_args(tolerance=0.02), 8),
        instance_name(_args(input=Path("/data/us cities")), 20),
        instance_name(_args(input=Path("/data/us cities"), potential_column="Population"), 20),
        instance_name(_args(input=Path("/data/fortune500")), 20),
    }
    assert len(names) == 8
    assert instance_name(_args(seed=3), 8) == "400x8_seed3"
    assert instance_name(_args(input=Path("/data/us cities"), potential_column="Population"), 20) == (
        "us-cities_population_20reps"
    )


def test_generated_reps_live_where_the_accounts_are_densest():
    rng = np.random.default_rng(5)
    cities = np.array([(40.71, -74.01), (41.88, -87.63), (34.05, -118.24)])
    # Half the accounts crowd three cities, half are scattered over the whole country.
    city = rng.integers(0, 3, 600)
    lat = np.r_[cities[city, 0] + rng.normal(0, 0.1, 600), rng.uniform(26, 48, 600)]
    lon = np.r_[cities[city, 1] + rng.normal(0, 0.1, 600), rng.uniform(-122, -70, 600)]
    accounts = pd.DataFrame(
        {"account_id": np.arange(1200).astype(str), "latitude": lat, "longitude": lon, "potential": 1.0, "tier": "C"}
    )
    reps = reps_for(None, accounts, 3, seed=1)
    assert len(reps) == 3 and reps["rep_id"].is_unique
    homes = to_xyz(reps["latitude"].to_numpy(float), reps["longitude"].to_numpy(float))
    centres = to_xyz(cities[:, 0], cities[:, 1])
    nearest_km = [great_circle_km(np.repeat(c[None], 3, axis=0), homes).min() for c in centres]
    # Every crowded city has a rep living there, not in the empty country around them.
    assert max(nearest_km) < 100


def test_a_real_export_writes_its_map_and_every_account_once_to_the_out_folder(tmp_path: Path):
    rng = np.random.default_rng(3)
    export = tmp_path / "tiny export"
    export.mkdir()
    pd.DataFrame({
        "account_id": [f"A{i}" for i in range(60)],
        "latitude": rng.uniform(30, 45, 60),
        "longitude": rng.uniform(-120, -75, 60),
        "revenue": rng.lognormal(3, 0.3, 60).round(2),
    }).to_csv(export / "accounts.csv", index=False)
    out = tmp_path / "out"
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "territories.py"
    done = subprocess.run(
        [sys.executable, str(script), "--input", str(export), "--potential-column", "revenue", "--reps", "3",
         "--out", str(out)],
        capture_output=True, text=True, check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["map"] == str(out / "territory_map_tiny-export_revenue_3reps.png")
    assert Path(figures["map"]).stat().st_size > 0
    plan = pd.read_csv(figures["assignments"])
    assert figures["assignments"] == str(out / "territory_assignments_tiny-export_revenue_3reps.csv")
    assert sorted(plan["account_id"]) == sorted(f"A{i}" for i in range(60))
    assert plan["rep_id"].nunique() == 3
    assert figures["max_rel_dev"]["account_count"] <= 0.05 + 1e-9
