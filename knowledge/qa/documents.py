"""A knowledge base: Markdown documents with an audience (``public`` for end users, ``internal`` for responders).

Documents are parsed as runbooks are (:func:`knowledge.runbooks.parse_runbook`: front matter, sections by
heading). Front matter ``audience: public|internal`` decides who may see a document; without it a source's
default applies, and without that a runbook (front matter ``alerts``, or a ``runbooks`` folder on its path) is
internal and anything else public. ``link`` comes from front matter ``link``, ``url`` or ``source``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from knowledge.runbooks import Runbook, Section, parse_runbook, read_front_matter, runbook_files

Audience = Literal["public", "internal"]
AUDIENCES: tuple[Audience, ...] = ("public", "internal")


@dataclass(frozen=True, slots=True)
class KbSource:
    """A folder of Markdown documents. ``prefix`` is put before every id (``"extra/"``: ``extra/node/DiskFull``)
    so that several folders never share an id; ``audience``: the default for documents that do not say."""

    root: Path
    prefix: str = ""
    audience: Audience | None = None


@dataclass(frozen=True, slots=True)
class QaDocument:
    """One document: its parsed content (a :class:`Runbook`, whatever the kind), audience and link."""

    content: Runbook
    audience: Audience
    link: str | None = None

    @property
    def doc_id(self) -> str:
        return self.content.id

    @property
    def title(self) -> str:
        return self.content.title

    @property
    def sections(self) -> tuple[Section, ...]:
        return self.content.sections

    @property
    def public(self) -> bool:
        return self.audience == "public"


def parse_document(doc_id: str, text: str, *, default_audience: Audience | None = None, digest: str = "") -> QaDocument:
    """One document from its Markdown (see the module's docstring for the audience and link rules)."""
    content = parse_runbook(doc_id, text, digest=digest)
    meta, _ = read_front_matter(text)
    declared = str(meta.get("audience", "")).strip().lower()
    audience: Audience
    if declared in AUDIENCES:
        audience = "public" if declared == "public" else "internal"
    elif default_audience is not None:
        audience = default_audience
    else:
        runbook_like = bool(content.alerts) or "runbooks" in doc_id.split("/")[:-1]
        audience = "internal" if runbook_like else "public"
    link = next((str(meta[k]).strip() for k in ("link", "url", "source") if meta.get(k)), None)
    return QaDocument(content, audience, link or None)


def _as_source(source: KbSource | str | Path) -> KbSource:
    return source if isinstance(source, KbSource) else KbSource(Path(source))


def load_kb(*sources: KbSource | str | Path) -> list[QaDocument]:
    """Every ``*.md`` under each source (hidden folders skipped), ids ``prefix + path without .md``, sorted by id.
    Raises ``FileNotFoundError`` for a missing folder and ``ValueError`` when two documents share an id."""
    documents: dict[str, QaDocument] = {}
    for source in map(_as_source, sources):
        if not source.root.is_dir():
            raise FileNotFoundError(f"knowledge folder not found: {source.root}")
        for path in runbook_files(source.root):
            raw = path.read_bytes()
            doc_id = source.prefix + path.relative_to(source.root).with_suffix("").as_posix()
            if doc_id in documents:
                raise ValueError(f"two documents have the id {doc_id!r} (give the folders different prefixes)")
            documents[doc_id] = parse_document(
                doc_id,
                raw.decode("utf-8", errors="replace"),
                default_audience=source.audience,
                digest=hashlib.sha256(raw).hexdigest(),
            )
    return [documents[k] for k in sorted(documents)]
