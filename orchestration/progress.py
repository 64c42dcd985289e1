"""A Dagster logger that prints one line per step to the terminal, for `territory run` progress."""

import logging
import sys
import time

from dagster import InitLoggerContext, logger

_SHOWN = {"STEP_START": "started ", "STEP_SUCCESS": "finished", "STEP_FAILURE": "FAILED  "}


class _StepLineHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.started = time.perf_counter()
        # The real terminal, even while the CLI sends dbt's and Dagster's chatter to the log file.
        self.stream = sys.__stdout__

    def emit(self, record: logging.LogRecord) -> None:
        event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
        label = _SHOWN.get(getattr(event, "event_type_value", ""))
        if label is None:
            return
        elapsed = time.perf_counter() - self.started
        self.stream.write(f"  [{elapsed:5.0f} s] {label} {event.step_key}\n")
        self.stream.flush()


@logger(description="One line per started, finished or failed step, written to the terminal.")
def step_progress_logger(init_context: InitLoggerContext) -> logging.Logger:
    progress = logging.getLogger("territory.progress")
    progress.setLevel(logging.DEBUG)
    progress.propagate = False
    progress.handlers = [_StepLineHandler()]
    return progress
