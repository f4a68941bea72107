"""Small inline SVG charts: no script, no library, nothing fetched."""

from __future__ import annotations

from collections.abc import Sequence

from durable.ui.html import e

_WIDTH, _HEIGHT, _PAD = 720, 140, 24


def bars(
    series: Sequence[tuple[str, Sequence[int], str]], labels: Sequence[str], *, title: str
) -> str:
    """Stacked bars, one per label: each series is (name, one count per label, colour).

    A bar's tooltip (`<title>`) gives its counts; the axis shows the largest total.
    """
    n = len(labels)
    totals = [sum(values[i] for _, values, _ in series) for i in range(n)]
    top = max(totals, default=0) or 1
    slot = (_WIDTH - _PAD) / max(n, 1)
    out = [
        f'<svg class="chart" role="img" aria-label="{e(title)}" width="{_WIDTH}" '
        f'height="{_HEIGHT + _PAD}" viewBox="0 0 {_WIDTH} {_HEIGHT + _PAD}">'
        f"<title>{e(title)}</title>",
        f'<text x="2" y="12" font-size="10" fill="#66707c">{top}</text>',
        f'<line x1="{_PAD}" y1="{_HEIGHT}" x2="{_WIDTH}" y2="{_HEIGHT}" stroke="#dde2e8"/>',
    ]
    for i, label in enumerate(labels):
        x = _PAD + i * slot
        base = float(_HEIGHT)
        tip = ", ".join(f"{name} {values[i]}" for name, values, _ in series)
        out.append(f"<g><title>{e(label)}: {e(tip)}</title>")
        for _name, values, colour in series:
            h = values[i] / top * (_HEIGHT - 16)
            if h > 0:
                base -= h
                out.append(
                    f'<rect x="{x + 1:.1f}" y="{base:.1f}" width="{max(slot - 2, 1):.1f}" '
                    f'height="{h:.1f}" fill="{colour}"/>'
                )
        out.append("</g>")
    for i, anchor in ((0, "start"), (n // 2, "middle"), (n - 1, "end")) if n else ():
        x = _PAD + i * slot + (slot if anchor == "end" else 0)
        out.append(
            f'<text x="{x:.1f}" y="{_HEIGHT + 16}" font-size="10" fill="#66707c" '
            f'text-anchor="{anchor}">{e(labels[i])}</text>'
        )
    out.append("</svg>")
    return "".join(out)
