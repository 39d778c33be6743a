"""Self-contained HTML reports: figures embedded as base64 PNG, tables from records.

One small builder that every experiment (demo, reproduce commands) uses, so reports look alike and
open offline: no external CSS, scripts or image files.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .. import __version__
from ..io import write_text_atomic

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.8em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#555}
.note{color:#555;font-size:.92em}code{background:#f5f5f5;padding:0 .2em}
"""


def figure_to_data_uri(fig: Any, dpi: int = 110) -> str:
    """Render a matplotlib figure to a base64 PNG data URI (and close it)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_file_to_data_uri(path: str | Path) -> str:
    """Embed an existing PNG file as a data URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        return f"{value:.{digits}f}"
    return html.escape(str(value))


@dataclass
class HTMLReport:
    """Accumulates sections, tables and figures; `write` produces one self-contained file."""

    title: str
    sections: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.sections.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.sections.append(f"<p{cls}>{html.escape(text)}</p>")

    def table(self, rows: Sequence[dict[str, Any]], columns: Iterable[str] | None = None,
              caption: str | None = None, digits: int = 3) -> None:
        """Add a table from a list of dicts (one per row)."""
        rows = list(rows)
        cols = list(columns) if columns is not None else (list(rows[0].keys()) if rows else [])
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{_fmt(r.get(c), digits)}</td>" for c in cols) + "</tr>" for r in rows)
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.sections.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, fig_or_uri: Any, caption: str = "") -> None:
        """Add a matplotlib figure (or a data URI / PNG path) with a caption."""
        if isinstance(fig_or_uri, (str, Path)) and not str(fig_or_uri).startswith("data:"):
            uri = png_file_to_data_uri(fig_or_uri)
        elif isinstance(fig_or_uri, str):
            uri = fig_or_uri
        else:
            uri = figure_to_data_uri(fig_or_uri)
        self.sections.append(
            f'<figure><img src="{uri}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}'
            "</figcaption></figure>")

    def render(self) -> str:
        body = "\n".join(self.sections)
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}"
                f"</title><style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n"
                f"<p class=\"note\">Written by photopop {html.escape(__version__)}.</p></body></html>\n")

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        write_text_atomic(path, self.render())
        return path
