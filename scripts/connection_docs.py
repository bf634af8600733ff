"""Rewrite the settings table of docs/connection.md from the settings table (hooks/settings.py).

Run after changing a setting: ``.venv/bin/python scripts/connection_docs.py``.
``tests/unit/test_connection_settings.py`` fails while the docs are out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow_provider_aidp.hooks.form import DOCS_END, DOCS_START, docs_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "connection.md"


def render(text: str) -> str:
    """``text`` with the part between the markers replaced by the generated table."""
    head, _, rest = text.partition(DOCS_START)
    _, _, tail = rest.partition(DOCS_END)
    return head + docs_table() + tail


def main() -> int:
    text = DOC.read_text(encoding="utf-8")
    if DOCS_START not in text:
        print(f"{DOC}: no {DOCS_START!r} marker", file=sys.stderr)
        return 1
    DOC.write_text(render(text), encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
