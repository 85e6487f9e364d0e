"""Runbook corpus: a folder of Markdown files, optionally with YAML front matter, split into sections.

A runbook's id is its path relative to the folder, without ``.md`` (``node/DiskFull``). Front matter keys read:
``title``, ``alerts`` (alert names this runbook answers), ``services``, ``tags``, ``actions`` (remediation
actions it suggests, by catalogue name); others are ignored. Sections are the Markdown headings (``## Meaning``,
``## Mitigation``...); text before the first heading belongs to a section named after the document.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SAMPLE_RUNBOOKS = Path(__file__).with_name("samples") / "runbooks"  # written for incibot: demo and tests

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_HUGO_SHORTCODE = re.compile(r"\{\{[<%].*?[>%]\}\}")
_HTML_TAG = re.compile(r"<[^>\n]+>")


@dataclass(frozen=True, slots=True)
class Section:
    heading: str
    text: str  # prose of the section, Markdown links reduced to their text; code kept


@dataclass(frozen=True, slots=True)
class Runbook:
    id: str
    title: str
    alerts: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()  # remediation actions suggested where this runbook applies
    sections: tuple[Section, ...] = ()
    source_url: str | None = None
    digest: str = ""  # sha256 of the file's bytes
    names: tuple[str, ...] = field(default=())  # every name the exact-name rule accepts for this runbook

    @property
    def body(self) -> str:
        return "\n\n".join(f"{s.heading}\n{s.text}" for s in self.sections)


def name_key(name: str) -> str:
    """How the exact-name rule compares names: case and punctuation ignored (``Node-Disk Full`` = ``nodediskfull``)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _strings(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if v is not None and str(v).strip())
    return (str(value),)


def read_front_matter(text: str) -> tuple[dict[str, object], str]:
    """The front matter's keys (lower-cased) and the text after it; ``({}, text)`` when absent or malformed."""
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, dict):
            return {str(k).lower(): v for k, v in loaded.items()}, text[match.end() :]
    return {}, text


def parse_runbook(doc_id: str, text: str, *, digest: str = "") -> Runbook:
    """Parse one runbook's Markdown (front matter optional; malformed front matter is treated as absent)."""
    meta, text = read_front_matter(text)
    stem = doc_id.rsplit("/", 1)[-1]
    sections: list[Section] = []
    heading: str | None = None
    first_heading: str | None = None  # the first heading, when it is a level-1 heading (the document's name)
    seen_heading = False
    lines: list[str] = []
    in_code = False

    def flush() -> None:
        body = _clean("\n".join(lines))
        if body or heading is not None:
            sections.append(Section(heading or "", body))

    for line in text.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            lines.append(line)
            continue
        m = None if in_code else _HEADING.match(line)
        if m:
            flush()
            heading = _clean(m.group(2))
            if not seen_heading and len(m.group(1)) == 1:
                first_heading = heading
            seen_heading = True
            lines = []
        else:
            lines.append(line)
    flush()
    # An H1 that only carries the name, with nothing under it, is the title rather than a section.
    sections = [s for s in sections if s.text or s.heading != first_heading]
    title = _strings(meta.get("title"))
    title_text = title[0] if title else (first_heading or stem)
    named = [sec for sec in sections if not sec.heading]
    sections = [sec if sec.heading else Section(title_text, sec.text) for sec in sections] if named else sections
    alerts = _strings(meta.get("alerts")) + _strings(meta.get("alert"))
    names = tuple(dict.fromkeys(n for n in (stem, *alerts, first_heading or "") if name_key(n)))
    source = _strings(meta.get("source")) or _strings(meta.get("url"))
    return Runbook(
        id=doc_id,
        title=title_text,
        alerts=alerts,
        services=_strings(meta.get("services")) + _strings(meta.get("service")),
        tags=_strings(meta.get("tags")),
        actions=_strings(meta.get("actions")),
        sections=tuple(sections),
        source_url=source[0] if source else None,
        digest=digest,
        names=names,
    )


def _clean(text: str) -> str:
    text = _HUGO_SHORTCODE.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _HTML_TAG.sub(" ", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def runbook_files(root: Path) -> Iterable[Path]:
    """Markdown files under ``root``, skipping hidden folders *inside* it (``root`` itself may be ``../x``)."""
    return sorted(
        p
        for p in root.rglob("*.md")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def load_corpus(root: str | Path) -> list[Runbook]:
    """Every ``*.md`` under ``root`` (hidden folders skipped), sorted by id."""
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"runbook folder not found: {base}")
    runbooks = []
    for path in runbook_files(base):
        raw = path.read_bytes()
        doc_id = path.relative_to(base).with_suffix("").as_posix()
        runbooks.append(
            parse_runbook(doc_id, raw.decode("utf-8", errors="replace"), digest=hashlib.sha256(raw).hexdigest())
        )
    return runbooks


def corpus_hash(runbooks: Iterable[Runbook]) -> str:
    """One digest for the corpus (ids and file digests), to notice when an index is stale."""
    digest = hashlib.sha256()
    for runbook in sorted(runbooks, key=lambda r: r.id):
        digest.update(f"{runbook.id}\0{runbook.digest}\n".encode())
    return digest.hexdigest()
