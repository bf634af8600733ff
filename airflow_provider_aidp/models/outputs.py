"""A task run's output (``fetchOutput``) as text for the Airflow log, whatever data type it came in.

The field notes saw ``fetchOutput`` answer a NOTEBOOK payload (ipynb JSON) for a notebook task; the
SDK also lists ``TEXT_PLAIN`` and ``TEXT_HTML``. Each is rendered as readable text: a notebook as
its stream / result text plus each error's ``ename: evalue`` and traceback (never the raw JSON), HTML
as its text. ANSI colour codes (Jupyter writes them into tracebacks) are stripped everywhere.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import html
import json
import re
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from airflow_provider_aidp.models.runs import RunOutputData, TaskRunOutput

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
TEXT_MIME = ("text/plain",)


@dataclass
class RenderedOutput:
    """The log text of one output and the errors it reports (``ename: evalue`` per error)."""

    text: str = ""
    errors: list[str] = field(default_factory=list)
    truncated: bool = False


def strip_ansi(text: str) -> str:
    return ANSI_RE.sub("", text)


def render(output: TaskRunOutput) -> RenderedOutput:
    """Every data item rendered as text, plus the output's ``errorTrace`` when not already shown."""
    result = RenderedOutput(truncated=bool(output.is_truncated))
    parts: list[str] = []
    for item in output.data:
        if item.value is None:
            continue
        try:
            raw = decode(item)
        except (ValueError, OSError, zlib.error, EOFError) as exc:
            parts.append(f"[output item of type {item.type} could not be decoded: {exc}]")
            continue
        text, errors = render_item(str(item.type or "TEXT_PLAIN").upper(), raw)
        result.errors.extend(errors)
        if text:
            parts.append(text)
    text = "\n".join(parts)
    trace = strip_ansi(output.error_trace or "").strip()
    if trace and trace not in text:
        text = f"{text}\n{trace}" if text else trace
    result.text = text
    return result


def render_item(kind: str, raw: str) -> tuple[str, list[str]]:
    """(text, errors) of one decoded data item of type ``kind``."""
    if kind in ("NOTEBOOK", "APPLICATION_X_IPYNB_JSON"):
        try:
            return render_notebook(json.loads(raw))
        except (ValueError, TypeError, AttributeError):
            return strip_ansi(raw), []  # not ipynb after all: show it as it came
    if "HTML" in kind:
        return html_text(raw), []
    return strip_ansi(raw), []


def render_notebook(nb: Any) -> tuple[str, list[str]]:
    """Stream and result text of every cell, and each error as ``ename: evalue`` + traceback."""
    lines: list[str] = []
    errors: list[str] = []
    for cell in nb.get("cells") or []:
        for out in cell.get("outputs") or []:
            kind = out.get("output_type")
            if kind == "stream":
                lines.append(_joined(out.get("text")))
            elif kind in ("execute_result", "display_data"):
                data = out.get("data") or {}
                if "text/plain" in data:
                    lines.append(_joined(data["text/plain"]))
                elif "text/html" in data:
                    lines.append(html_text(_joined(data["text/html"])))
            elif kind == "error":
                head = f"{out.get('ename', 'Error')}: {strip_ansi(str(out.get('evalue', '')))}"
                errors.append(head)
                trace = strip_ansi("\n".join(str(t) for t in out.get("traceback") or []))
                lines.append(trace if head in trace else "\n".join(p for p in (trace, head) if p))
    return strip_ansi("\n".join(line.rstrip("\n") for line in lines if line)), errors


def _joined(value: Any) -> str:
    return "".join(str(v) for v in value) if isinstance(value, list) else str(value or "")


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li", "pre", "h1", "h2", "h3"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_text(markup: str) -> str:
    parser = _TextOf()
    parser.feed(markup)
    parser.close()
    text = html.unescape("".join(parser.parts))
    return strip_ansi("\n".join(line.rstrip() for line in text.strip().splitlines()))


def decode(item: RunOutputData) -> str:
    """The item's value as text (base64 and gzip/deflate aware)."""
    value = str(item.value)
    if not item.is_base64 and not item.compression:
        return value
    raw = base64.b64decode(value, validate=True) if item.is_base64 else value.encode("latin-1")
    kind = (item.compression or "").upper()
    if kind in ("GZIP", "GZ"):
        raw = gzip.decompress(raw)
    elif kind in ("DEFLATE", "ZLIB"):
        raw = _inflate(raw)
    elif kind in ("BZIP2", "BZ2"):
        raw = bz2.decompress(raw)
    elif kind:  # COMPRESS (LZW) has no decoder in the standard library: say so, never show bytes
        raise ValueError(f"compression {item.compression} is not supported")
    charset = (item.charset or "utf-8").replace("_", "-")
    return raw.decode(charset, errors="replace")


def _inflate(raw: bytes) -> bytes:
    """DEFLATE as HTTP means it (zlib-wrapped), or the raw stream many servers send instead."""
    try:
        return zlib.decompress(raw)
    except zlib.error:
        return zlib.decompress(raw, -zlib.MAX_WBITS)
