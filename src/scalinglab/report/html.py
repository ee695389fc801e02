"""report.html: one self-contained file (CSS inline, PNGs embedded as base64), readable
offline. Every string that comes from a user (run names, paths, corpus names, study
names, fit warnings) goes through `esc` (html.escape, quotes included).
"""

import base64
import html
import math
from pathlib import Path

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}
main{max-width:1250px;margin:0 auto;padding:24px 32px;background:#fff}
h1{font-size:26px;margin:0 0 4px} h2{font-size:20px;margin:34px 0 8px;border-bottom:2px solid
#e3e6eb;padding-bottom:4px} h3{font-size:16px;margin:18px 0 6px}
.sub{color:#5a6272;margin:0 0 14px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0}
.card{flex:1 1 260px;border:1px solid #dfe3ea;border-radius:8px;padding:12px 14px;background:#fbfcfd}
.card .k{font-size:13px;color:#5a6272} .card .v{font-size:22px;font-weight:600;margin-top:3px}
.card .n{font-size:13px;color:#39404d;margin-top:4px}
.ok{color:#1e8449} .bad{color:#b03a2e}
figure{margin:14px 0 22px} figure img{max-width:100%;border:1px solid #e3e6eb}
figcaption{font-size:13.5px;color:#39404d;margin-top:5px;max-width:1100px}
table{border-collapse:collapse;font-size:13px;margin:6px 0 14px}
th,td{border:1px solid #dfe3ea;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#eef1f5} td.l,th.l{text-align:left}
.scroll{overflow-x:auto} .warn{font-size:13px;color:#7d5a00}
code{background:#f0f2f5;padding:1px 4px;border-radius:3px;font-size:13px}
"""


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def num(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int) and abs(x) < 1e6:
        return f"{x:,}"
    x = float(x)
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.{max(1, digits - 1)}e}"
    return f"{x:.{digits}g}"


def interval(ci, digits: int = 4) -> str:
    if not ci or None in ci:
        return "–"
    return f"[{num(ci[0], digits)}, {num(ci[1], digits)}]"


def fixed(x, decimals: int) -> str:
    """`x` with `decimals` digits after the point ("" for None): `apart`'s `fmt` where a
    column reads in fixed decimals (the terminal, a figure's legend)."""
    return "" if x is None else f"{x:.{decimals}f}"


def apart(values: list, digits: int = 4, fmt=num) -> list[str]:
    """`values` each written by `fmt(value, d)` with the fewest digits d (at least
    `digits`) that keep unequal values unequal. Rounding keeps their order, so a
    measured loss 2e-5 below its interval's lower end no longer reads as equal to it
    beside the word "outside" (an audit). None and non-finite values stay as `fmt`
    writes them."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    for d in range(digits, 17):
        out = [fmt(v, d) for v in values]
        if len({fmt(v, d) for v in finite}) == len(set(finite)):
            return out
    return out


def table(head: list[str], rows: list[list], left: int = 1) -> str:
    """An HTML table; the first `left` columns are left-aligned; cells are escaped here."""
    th = "".join(f'<th class="{"l" if i < left else ""}">{esc(h)}</th>' for i, h in enumerate(head))
    body = []
    for r in rows:
        tds = "".join(
            f'<td class="{"l" if i < left else ""}">{esc(c)}</td>' for i, c in enumerate(r)
        )
        body.append(f"<tr>{tds}</tr>")
    return f'<div class="scroll"><table><tr>{th}</tr>{"".join(body)}</table></div>'


def figure(png: Path, caption: str, alt: str) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def card(key: str, value: str, note: str = "", cls: str = "") -> str:
    return (
        f'<div class="card"><div class="k">{esc(key)}</div>'
        f'<div class="v {esc(cls)}">{esc(value)}</div><div class="n">{esc(note)}</div></div>'
    )


def page(title: str, subtitle: str, sections: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f'<h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p>'
        + "\n".join(sections)
        + "</main></body></html>\n"
    )
