"""Serves docs/runbooks/*.md as pages, so every alert's runbook_url opens offline."""

from __future__ import annotations

import html
import re
from pathlib import Path

from markdown_it import MarkdownIt

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_markdown = MarkdownIt("commonmark").enable("table")
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:860px;margin:24px auto;padding:0 16px;line-height:1.5}}
code,pre{{background:#f4f5f7;border-radius:4px}}pre{{padding:8px;overflow-x:auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head>
<body><p><a href="/">← alert channels</a> · <a href="/runbooks">all runbooks</a></p>{body}</body></html>"""


class Runbooks:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.md") if p.stem.lower() != "readme")

    def page(self, name: str) -> str | None:
        if not _NAME.match(name):
            return None
        path = self.folder / f"{name}.md"
        if not path.is_file():
            return None
        return _PAGE.format(title=html.escape(name), body=_markdown.render(path.read_text()))

    def index(self) -> str:
        items = "".join(f'<li><a href="/runbooks/{html.escape(n)}">{html.escape(n)}</a></li>' for n in self.names())
        return _PAGE.format(title="Runbooks", body=f"<h1>Runbooks</h1><ul>{items}</ul>")
