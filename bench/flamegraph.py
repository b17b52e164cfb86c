"""A flamegraph SVG from collapsed stacks, so one py-spy recording gives both the picture
and the text summary (py-spy writes one format per recording)."""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

_WIDTH = 1400
_ROW = 17
_MIN_WIDTH_PX = 0.3  # narrower frames are not drawn
_CHAR_PX = 6.5


@dataclass
class _Node:
    name: str
    count: int = 0
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(stacks: Counter[tuple[str, ...]]) -> tuple[_Node, int]:
    root = _Node("all")
    depth = 0
    for stack, count in stacks.items():
        node = root
        node.count += count
        for frame in stack:
            node = node.children.setdefault(frame, _Node(frame))
            node.count += count
        depth = max(depth, len(stack))
    return root, depth


def _colour(name: str) -> str:
    """A stable warm colour per function (hue from the name)."""
    h = zlib.crc32(name.encode())
    return f"rgb({205 + h % 50},{80 + (h >> 8) % 120},{40 + (h >> 16) % 50})"


def write_svg(stacks: Counter[tuple[str, ...]], path: Path, title: str) -> None:
    """Writes a flamegraph (root at the bottom); hover a frame for its name and share."""
    root, depth = _tree(stacks)
    total = root.count or 1
    height = (depth + 3) * _ROW
    scale = _WIDTH / total
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f'<rect width="100%" height="100%" fill="#fdfdf6"/>'
        f'<text x="6" y="13" font-size="13">{escape(title)}</text>',
    ]

    def draw(node: _Node, x: float, level: int) -> None:
        width = node.count * scale
        if width < _MIN_WIDTH_PX:
            return
        y = height - (level + 1) * _ROW
        label = f"{node.name} ({node.count:,} samples, {node.count / total:.1%})"
        parts.append(
            f'<g><title>{escape(label)}</title><rect x="{x:.1f}" y="{y}" width="{width:.1f}" '
            f'height="{_ROW - 1}" fill="{_colour(node.name)}"/>'
        )
        characters = int((width - 4) / _CHAR_PX)
        if characters >= 3:
            text = node.name if len(node.name) <= characters else node.name[: characters - 2] + ".."
            parts.append(f'<text x="{x + 2:.1f}" y="{y + _ROW - 5}">{escape(text)}</text>')
        parts.append("</g>")
        offset = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            draw(child, offset, level + 1)
            offset += child.count * scale

    draw(root, 0.0, 0)
    parts.append("</svg>")
    path.write_text("\n".join(parts))
