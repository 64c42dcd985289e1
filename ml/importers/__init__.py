"""Importers that turn known CRM export shapes into the input contract (`territory import KIND SRC`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ml.importers._source import SourceError
from ml.importers.maven_crm import import_maven_crm
from ml.importers.olist_funnel import import_olist_funnel

IMPORTERS: dict[str, Callable[[str | Path, str | Path], dict]] = {
    "maven-crm": import_maven_crm,
    "olist-funnel": import_olist_funnel,
}

__all__ = ["IMPORTERS", "SourceError", "import_maven_crm", "import_olist_funnel", "run_importer"]


def run_importer(kind: str, src: str | Path, out: str | Path) -> dict:
    """Import the export folder `src` of shape `kind` into `out`; return its summary.

    The summary holds `kind`, `source`, `out`, `rows_read` (per source file), `rows_written`
    (per contract file) and `notes` (every quirk met and how it was handled).
    """
    importer = IMPORTERS.get(kind)
    if importer is None:
        raise ValueError(f"unknown import kind {kind!r}; known kinds: {', '.join(sorted(IMPORTERS))}")
    return importer(src, out)
