"""The `territory` command line: prepare, run, generate, import, route, rebalance and ui."""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from orchestration.resources import DBT_PROJECT_DIR, PROJECT_ROOT, PipelineSettings


def _interactive() -> bool:
    return sys.stdout.isatty()


def _say(message: str) -> None:
    print(message, flush=True)


def dagster_home() -> Path:
    """Runs from the CLI and the UI share one instance, so the UI shows CLI runs too."""
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / "data" / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    settings_file = home / "dagster.yaml"
    if not settings_file.exists():
        # The machine may have no network; Dagster's usage telemetry only adds noise to the logs.
        settings_file.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def prepare_manifest() -> Path:
    """Parse the dbt project once into target/manifest.json (Dagster reads it; it never parses)."""
    env = {**os.environ, "TERRITORY_WAREHOUSE": os.environ.get("TERRITORY_WAREHOUSE", "data/warehouse.duckdb")}
    dbt = Path(sys.executable).with_name("dbt")
    subprocess.run(
        [str(dbt), "parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)],
        check=True, env=env, cwd=DBT_PROJECT_DIR,
    )
    return DBT_PROJECT_DIR / "target" / "manifest.json"


def cmd_prepare(_: argparse.Namespace) -> int:
    path = prepare_manifest()
    _say(f"dbt manifest ready: {path}")
    return 0


def _progress_printer(enabled: bool):
    if not enabled:
        return None
    last = {"stage": None}

    def report(stage: str, fraction: float) -> None:
        end = "\n" if fraction >= 1.0 else ""
        prefix = "\n" if last["stage"] not in (None, stage) else ""
        last["stage"] = stage
        print(f"{prefix}\r  {stage}: {fraction:6.1%}", end=end, flush=True)

    return report


def cmd_generate(args: argparse.Namespace) -> int:
    from ml.synthetic import generate_export

    started = time.perf_counter()
    summary = generate_export(
        args.out, n_accounts=args.accounts, seed=args.seed, file_format=args.format,
        progress=_progress_printer(_interactive()),
    )
    rows = summary.get("rows", {})
    _say(f"synthetic export written to {args.out} in {time.perf_counter() - started:.1f} s")
    for table, count in rows.items():
        _say(f"  {table:<20} {count:>12,} rows")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ml.importers import run_importer
    from ml.importers.mapped import import_mapped, parse_mapping

    if args.kind == "mapped":
        if not args.table or not args.map:
            raise ValueError("territory import mapped needs --table TABLE and --map contract=SOURCE,...")
        summary = import_mapped(args.src, args.table, parse_mapping(args.map), args.out)
    else:
        summary = run_importer(args.kind, args.src, args.out)
    _say(f"{args.kind} export {args.src} converted to the input contract in {args.out}")
    for key in ("rows_read", "rows_written"):
        for table, count in summary.get(key, {}).items():
            _say(f"  {key.replace('_', ' ')}: {table:<40} {count:>8,}")
    for note in summary.get("notes", []):
        _say(f"  note: {note}")
    return 0


@contextlib.contextmanager
def _run_output(log_path: Path, verbose: bool):
    """dbt and Dagster write step logs to stdout/stderr; keep them in a file unless asked for."""
    if verbose:
        yield
        return
    with open(log_path, "w", encoding="utf-8") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        yield


def cmd_run(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from ml.ingest import InputError
    from orchestration.definitions import FULL_PIPELINE_JOB, build_definitions
    from orchestration.summary import print_run_summary

    settings = PipelineSettings(
        input_dir=str(Path(args.input).resolve()) if args.input else None,
        warehouse=str(Path(args.warehouse).resolve()) if args.warehouse else "data/warehouse.duckdb",
        policy_file=str(Path(args.config).resolve()) if args.config else None,
    )
    settings.load_policy()  # a broken policy file fails here, before any work
    if not (DBT_PROJECT_DIR / "target" / "manifest.json").exists():
        prepare_manifest()
    dagster_home()
    job = build_definitions(settings).resolve_job_def(FULL_PIPELINE_JOB)
    source = args.input or f"built-in synthetic data ({settings.synthetic_accounts:,} accounts)"
    _say(f"materializing the full pipeline on {source} -> {settings.warehouse_path}")
    started = time.perf_counter()
    log_path = settings.data_dir / "logs" / "last_run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with DagsterInstance.get() as instance, _run_output(log_path, args.verbose):
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {
                "console": {"config": {"log_level": "INFO" if args.verbose else "WARNING"}},
                **({"progress": {}} if _interactive() and not args.verbose else {}),
            }},
        )
    seconds = time.perf_counter() - started
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
                error = event.step_failure_data.error
                cause = error.cause or error
                while cause.cause is not None and cause.cls_name != InputError.__name__:
                    cause = cause.cause
                _say(f"error in step {event.step_key}: {cause.message.strip()}")
        _say(f"run failed after {seconds:.0f} s (run id {result.run_id}); full log: {log_path}")
        return 1
    print_run_summary(settings, result, seconds)
    return 0


def _settings(args: argparse.Namespace) -> PipelineSettings:
    return PipelineSettings(
        warehouse=str(Path(args.warehouse).resolve()) if args.warehouse else "data/warehouse.duckdb",
        policy_file=str(Path(args.config).resolve()) if args.config else None,
    )


def cmd_route(args: argparse.Namespace) -> int:
    from orchestration.routing import Router, route_file

    settings = _settings(args)
    router = Router.start(settings)
    started = time.perf_counter()
    decisions = route_file(settings, Path(args.input), run_id=f"route-{time.strftime('%Y%m%dT%H%M%S')}",
                           router=router)
    seconds = time.perf_counter() - started
    if args.out:
        decisions.to_csv(args.out, index=False)
    shown = decisions[["lead_id", "rep_id", "owner_role", "tier", "sla_due_at", "reason"]]
    _say(shown.head(args.show).to_string(index=False))
    fallbacks = int(decisions["reason"].str.contains("fallback").sum())
    tiers = decisions["tier"].value_counts().reindex(["A", "B", "C"], fill_value=0)
    _say(f"routed {len(decisions):,} leads in {seconds:.2f} s (model {router.model.model_version}): "
         + ", ".join(f"{t} {n:,}" for t, n in tiers.items()) + f"; {fallbacks:,} by policy fallback; "
         f"appended to routing_decisions in {settings.warehouse_path}" + (f"; decisions in {args.out}" if args.out else ""))
    return 0


def cmd_rebalance_apply(args: argparse.Namespace) -> int:
    from orchestration.rebalance import apply_proposal

    outcome = apply_proposal(_settings(args), args.proposal_id, args.by)
    _say(f"applied {args.proposal_id}: {outcome['moves']} moves by {outcome['applied_by']} at "
         f"{outcome['applied_at']}; highest A-tier utilization now {outcome['max_utilization']:.0%}, "
         f"{outcome['alerts']} coverage alerts")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    if not (DBT_PROJECT_DIR / "target" / "manifest.json").exists():
        prepare_manifest()
    dagster_home()
    dagster = Path(sys.executable).with_name("dagster")
    _say(f"Dagster UI on http://127.0.0.1:{args.port} (Ctrl-C to stop)")
    return subprocess.call(
        [str(dagster), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(args.port)],
        cwd=PROJECT_ROOT,
    )


def cmd_model(args: argparse.Namespace) -> int:
    from ml.model_registry import ModelRegistry

    registry = ModelRegistry(_settings(args).champion_path.parent)
    if args.action == "promote":
        if not args.version:
            raise ValueError("territory model promote needs a VERSION; see `territory model list`")
        entry = registry.promote(args.version, "by hand (territory model promote)")
        _say(f"{entry['model_version']} is the champion; the next run scores with it")
        return 0
    versions = registry.versions()
    if not versions:
        _say(f"no model versions in {registry.root}: run `territory run` first")
    for v in versions:
        window = v.get("data_window") or {}
        test = v.get("test_metrics") or {}
        shown = ", ".join(f"{k} {test[k]:.3f}" for k in ("auc", "log_loss", "ece") if test.get(k) is not None)
        _say(f"{v['model_version']:<18} {v['status']:<10} outcomes {window.get('from')} .. {window.get('to')}  "
             f"{len(v.get('features', []))} features  test: {shown or 'n/a'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="territory", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="materialize the whole asset graph")
    run.add_argument("--input", help="CRM export folder (CSV or Parquet); default: built-in synthetic data")
    run.add_argument("--warehouse", help="DuckDB warehouse file (default data/warehouse.duckdb)")
    run.add_argument("--config", help="policy YAML file (default config/policy.yml)")
    run.add_argument("--verbose", action="store_true", help="show Dagster's step logs")
    run.set_defaults(func=cmd_run)

    gen = sub.add_parser("generate", help="write a synthetic export in the input contract")
    gen.add_argument("--accounts", type=int, default=5000)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--out", required=True)
    gen.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    gen.set_defaults(func=cmd_generate)

    imp = sub.add_parser("import", help="turn a known export shape into the input contract")
    imp.add_argument("kind", help="maven-crm, olist-funnel, or mapped (any CSV with --table and --map)")
    imp.add_argument("src")
    imp.add_argument("--out", required=True)
    imp.add_argument("--table", help="mapped: the contract table the file becomes (e.g. accounts)")
    imp.add_argument("--map", help="mapped: contract=SOURCE column pairs, e.g. account_id=RANK,latitude=LATITUDE")
    imp.set_defaults(func=cmd_import)

    route = sub.add_parser("route", help="route new leads to exactly one owner each, with tier and SLA")
    route.add_argument("--input", required=True, help="CSV or JSON-lines file with the accounts columns")
    route.add_argument("--warehouse", help="DuckDB warehouse file (default data/warehouse.duckdb)")
    route.add_argument("--config", help="policy YAML file (default config/policy.yml)")
    route.add_argument("--out", help="also write the decisions to this CSV file")
    route.add_argument("--show", type=int, default=10, help="decisions to print (default 10)")
    route.set_defaults(func=cmd_route)

    rebalance = sub.add_parser("rebalance", help="act on rebalance proposals")
    rebalance_sub = rebalance.add_subparsers(dest="action", required=True)
    apply = rebalance_sub.add_parser("apply", help="apply one proposal and record who applied it and when")
    apply.add_argument("proposal_id")
    apply.add_argument("--warehouse", help="DuckDB warehouse file (default data/warehouse.duckdb)")
    apply.add_argument("--config", help="policy YAML file (default config/policy.yml)")
    apply.add_argument("--by", help="who applies it (default: the login name)")
    apply.set_defaults(func=cmd_rebalance_apply)

    ui = sub.add_parser("ui", help="the Dagster UI on 127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    model = sub.add_parser("model", help="list scoring model versions, or promote one (roll back)")
    model.add_argument("action", choices=["list", "promote"])
    model.add_argument("version", nargs="?", help="the model_version to promote")
    model.add_argument("--warehouse", help="DuckDB warehouse file (default data/warehouse.duckdb)")
    model.add_argument("--config", help="policy YAML file (default config/policy.yml)")
    model.set_defaults(func=cmd_model)

    prep = sub.add_parser("prepare", help="build the dbt manifest (done by make install)")
    prep.set_defaults(func=cmd_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        _say(f"error: {exc}")
        return 2
    except subprocess.CalledProcessError as exc:
        _say(f"error: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
