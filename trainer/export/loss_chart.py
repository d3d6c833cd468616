"""The loss chart for a model card, as a PNG, without a plotting library.

The trainer's environment has neither matplotlib nor Pillow (and must not import Qt), so the
chart is drawn here: a white canvas, a light grid, train loss in blue and eval loss in orange,
written with zlib as a standard 8-bit RGB PNG. The card states the axes' ranges in text.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

WIDTH, HEIGHT, MARGIN = 640, 320, 24
WHITE, GRID, AXIS = (255, 255, 255), (228, 228, 228), (120, 120, 120)
TRAIN, EVAL = (31, 119, 180), (255, 127, 14)

Series = Sequence[tuple[float, float]]  # (step, value)


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(WHITE) * (width * height))

    def dot(self, x: int, y: int, colour: tuple[int, int, int]) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = 3 * (y * self.width + x)
            self.pixels[i : i + 3] = bytes(colour)

    def line(self, a: tuple[int, int], b: tuple[int, int], colour: tuple[int, int, int]) -> None:
        (x0, y0), (x1, y1) = a, b
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:  # Bresenham, drawn two pixels thick so it survives a scaled-down view
            self.dot(x0, y0, colour)
            self.dot(x0, y0 + 1, colour)
            if (x0, y0) == (x1, y1):
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def png(self) -> bytes:
        rows = b"".join(
            b"\x00" + bytes(self.pixels[3 * y * self.width : 3 * (y + 1) * self.width])
            for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 9))
            + chunk(b"IEND", b"")
        )


def render_loss_chart(train: Series, evaluation: Series, path: Path) -> Path:
    """Write the chart of ``train`` and ``evaluation`` losses to ``path`` (PNG)."""
    canvas = _Canvas(WIDTH, HEIGHT)
    points = [*train, *evaluation]
    if points:
        steps = [s for s, _ in points]
        values = [v for _, v in points]
        lo_s, hi_s = min(steps), max(steps)
        lo_v, hi_v = min(values), max(values)
        span_s, span_v = (hi_s - lo_s) or 1.0, (hi_v - lo_v) or 1.0
        inner_w, inner_h = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN

        def at(step: float, value: float) -> tuple[int, int]:
            x = MARGIN + round((step - lo_s) / span_s * inner_w)
            y = HEIGHT - MARGIN - round((value - lo_v) / span_v * inner_h)
            return x, y

        for k in range(5):
            y = MARGIN + round(k * inner_h / 4)
            canvas.line((MARGIN, y), (WIDTH - MARGIN, y), GRID)
        canvas.line((MARGIN, HEIGHT - MARGIN), (WIDTH - MARGIN, HEIGHT - MARGIN), AXIS)
        canvas.line((MARGIN, MARGIN), (MARGIN, HEIGHT - MARGIN), AXIS)
        for series, colour in ((train, TRAIN), (evaluation, EVAL)):
            pixels = [at(s, v) for s, v in series]
            for a, b in itertools.pairwise(pixels):
                canvas.line(a, b, colour)
            if len(pixels) == 1:
                canvas.line(pixels[0], pixels[0], colour)
    path.write_bytes(canvas.png())
    return path
