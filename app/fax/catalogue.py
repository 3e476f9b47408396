"""The document catalogue: the configured PDFs made into fax pages at start.

A document whose PDF is missing, unreadable or not a PDF is reported as a configuration error
naming the file, line and field, and left out; the others are offered all the same.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.adapters.fax_pages import FaxPages, FaxPagesError
from app.config import Settings
from app.domain.fax import Catalogue, FaxDocument
from app.errors import ConfigError

log = logging.getLogger(__name__)


async def build_catalogue(settings: Settings, pages: FaxPages) -> tuple[Catalogue, list[ConfigError]]:
    base = Path(settings.source).parent
    docs: list[FaxDocument] = []
    problems: list[ConfigError] = []
    for i, entry in enumerate(settings.fax.documents):
        pdf = Path(entry.pdf)
        if not pdf.is_absolute():
            pdf = base / pdf
        try:
            tiff, count = await pages.convert(pdf)
        except FaxPagesError as exc:
            problem = ConfigError(
                f"{exc}; document {entry.code} is not offered",
                file=settings.source,
                line=entry.line,
                field_path=f"fax.documents[{i}].pdf",
            )
            log.error("%s", problem.message)
            problems.append(problem)
            continue
        docs.append(FaxDocument(entry.code, entry.en, entry.zh, count, str(tiff)))
    return Catalogue(tuple(docs)), problems
