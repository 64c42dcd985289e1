"""Data quality checks: Great Expectations suites in code and a runner that fails on any GX error."""

from expectations.runner import DEFAULT_SAMPLE_ROWS, SuiteOutcome, run_suite
from expectations.suites import SUITES

__all__ = ["DEFAULT_SAMPLE_ROWS", "SUITES", "SuiteOutcome", "run_suite"]
