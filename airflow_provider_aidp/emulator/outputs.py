"""``fetchOutput`` answers in each data type a reading asks for: NOTEBOOK (ipynb JSON), TEXT_PLAIN, HTML.

The field notes saw ``fetchOutput`` answer "a NOTEBOOK payload" for a notebook task (and warn that
job-executed notebooks may persist empty cells); the SDK's ``RunOutputData.type`` also lists
``TEXT_PLAIN`` and ``TEXT_HTML``. A failed notebook carries an ``error`` output whose traceback has
ANSI colour codes, as Jupyter writes them. Each value is sent as text, or base64 of it (gzip,
deflate or bzip2 compressed first) under the ``output_encoding`` reading.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import html
import json
import zlib
from collections.abc import Callable
from typing import Any

from .readings import Readings
from .records import TaskRunRecord

ANSI_RED, ANSI_RESET = "\x1b[0;31m", "\x1b[0m"


def output_text(tr: TaskRunRecord) -> str:
    """What the task printed: its scripted output, else its state message (nothing while running)."""
    if not tr.done:
        return ""
    if tr.script.output is not None:
        return tr.script.output
    return tr.state_message or ""


def error_parts(tr: TaskRunRecord) -> tuple[str, str, list[str]] | None:
    """(ename, evalue, traceback lines) of a failed task, from the last line of its trace."""
    if not tr.done or tr.status == "SUCCESS":
        return None
    trace = (tr.error_trace or "").strip()
    last = trace.splitlines()[-1] if trace else ""
    ename, sep, evalue = last.partition(": ")
    if not sep or " " in ename:
        ename, evalue = "Exception", tr.state_message or tr.status
    lines = [f"{ANSI_RED}{line}{ANSI_RESET}" for line in trace.splitlines()[:-1]]
    lines.append(f"{ANSI_RED}{ename}{ANSI_RESET}: {evalue}")
    return ename, evalue, lines


def notebook(tr: TaskRunRecord) -> str:
    """An executed notebook as ipynb JSON: an output cell, an empty cell, an error cell if it failed."""
    text = output_text(tr) if tr.script.output is not None else ""
    cells: list[dict[str, Any]] = [
        {
            "cell_type": "code",
            "execution_count": 1,
            "metadata": {},
            "source": ["print(result)"],
            "outputs": [{"output_type": "stream", "name": "stdout", "text": text.splitlines(True)}]
            if text
            else [],
        },
        {"cell_type": "code", "execution_count": None, "metadata": {}, "source": [], "outputs": []},
    ]
    error = error_parts(tr)
    if error is not None:
        ename, evalue, traceback = error
        cells.append(
            {
                "cell_type": "code",
                "execution_count": 2,
                "metadata": {},
                "source": ["run_step()"],
                "outputs": [
                    {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": traceback}
                ],
            }
        )
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def output_data(tr: TaskRunRecord, readings: Readings) -> list[dict[str, Any]]:
    """The ``data`` list of a fetchOutput answer under ``readings``."""
    if not tr.done:
        return []
    fmt = readings.output_format
    if fmt == "notebook" and tr.task.get("type") == "NOTEBOOK_TASK":
        kind, value = "NOTEBOOK", notebook(tr)
    else:
        text = output_text(tr)
        if not text:
            return []
        if fmt == "html":
            kind, value = "TEXT_HTML", f"<html><body><pre>{html.escape(text)}</pre></body></html>"
        else:
            kind, value = "TEXT_PLAIN", text
    length: Any = len(value.encode())
    item = {
        "type": kind,
        "value": value,
        "length": length if readings.loose_types else str(length),
        "charset": "UTF_8",
        "isBase64": False,
    }
    return [encoded(item, readings.output_encoding)]


_COMPRESS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("GZIP", gzip.compress),
    "deflate": ("DEFLATE", zlib.compress),
    "bzip2": ("BZIP2", bz2.compress),
}


def encoded(item: dict[str, Any], encoding: str) -> dict[str, Any]:
    """``item`` with its ``value`` encoded as the ``output_encoding`` reading says."""
    if encoding == "plain":
        return item
    raw = str(item["value"]).encode()
    out = {**item, "isBase64": True}
    if encoding in _COMPRESS:
        out["compression"], compress = _COMPRESS[encoding]
        raw = compress(raw)
    out["value"] = base64.b64encode(raw).decode("ascii")
    return out
