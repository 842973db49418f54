"""QR codes of invite links, as SVG or PNG bytes (qrcode with Pillow)."""

from __future__ import annotations

import io

import qrcode
import qrcode.constants
from PIL import Image

# Medium error correction survives a smudged poster or a compressed screenshot without
# making the code so dense that a cheap phone camera struggles. The quiet zone of four
# modules is what the standard asks and what scanners rely on.
ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
BORDER = 4


def _qr(data: str, box_size: int = 10) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=ERROR_CORRECTION, box_size=box_size, border=BORDER)
    code.add_data(data)
    code.make(fit=True)
    return code


def qr_svg(data: str) -> bytes:
    """A standalone SVG document (white background, one path) that scales to any size.

    Written here from the module matrix, one rectangle per run of dark modules in a row:
    qrcode's own SVG writers take longer than encoding the code itself.
    """
    matrix = _qr(data).get_matrix()  # the quiet zone included
    size = len(matrix)
    runs = []
    for y, row in enumerate(matrix):
        x = 0
        while x < size:
            if not row[x]:
                x += 1
                continue
            start = x
            while x < size and row[x]:
                x += 1
            runs.append(f"M{start} {y}h{x - start}v1h{start - x}z")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" '
        f'width="{size * 10}" height="{size * 10}" shape-rendering="crispEdges">'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path d="{"".join(runs)}" fill="#000"/></svg>\n'
    ).encode()


def _bilevel(data: str, *, size: int) -> Image.Image:
    """The code as a one-bit image of about `size` pixels square (whole modules only)."""
    modules = _qr(data).modules_count + 2 * BORDER
    code = _qr(data, box_size=max(1, size // modules))
    return code.make_image(fill_color="black", back_color="white").get_image()


def qr_image(data: str, *, size: int) -> Image.Image:
    """A black-on-white RGB image of about `size` pixels square, to draw on (posters)."""
    return _bilevel(data, size=size).convert("RGB")


def qr_png(data: str, *, size: int = 480) -> bytes:
    buffer = io.BytesIO()
    # One bit per pixel: a third of the bytes of an RGB PNG, the same code to a scanner.
    _bilevel(data, size=size).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
