"""The share poster: a 720×1280 PNG with the campaign's headline, the participant's name,
the QR code of their invite link and the reward line, in a font that draws Chinese.

Made for WeChat, where links cannot be shared as such: people save the poster and post
it to Moments or a chat, and friends scan it. Plain values in, PNG bytes out.
"""

from __future__ import annotations

import functools
import io
import logging
import unicodedata
from pathlib import Path

from django.conf import settings
from PIL import Image, ImageDraw, ImageFont

from apps.common.qr import qr_image

logger = logging.getLogger(__name__)

WIDTH, HEIGHT = 720, 1280
MARGIN = 56
BACKGROUND = (180, 35, 44)  # festive red; white text on it has a contrast ratio over 6
TEXT = (255, 255, 255)
SOFT_TEXT = (255, 226, 226)
CARD = (255, 255, 255)
CARD_TEXT = (40, 40, 40)
QR_SIZE = 440

# Where Debian (fonts-noto-cjk) and other distributions put fonts that draw Chinese; the
# index picks the Simplified Chinese face of a collection.
DEFAULT_FONTS: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.lru_cache(maxsize=8)
def font_source(configured: str, index: int) -> tuple[str, int] | None:
    """The font file (and face index) posters are drawn with; None for Pillow's own font,
    which has no Chinese. Keyed by the settings, so each choice is logged once."""
    candidates = ([(configured, index)] if configured else []) + list(DEFAULT_FONTS)
    for path, face in candidates:
        if not Path(path).is_file():
            if path == configured:
                logger.warning("POSTER_FONT %s does not exist; trying the default fonts", path)
            continue
        try:
            ImageFont.truetype(path, 20, index=face)
        except OSError:
            logger.warning("Poster font %s (index %s) cannot be loaded", path, face)
            continue
        return path, face
    logger.warning(
        "No font that draws Chinese was found for share posters; using Pillow's default, "
        "which draws Chinese as boxes. Install fonts-noto-cjk or set POSTER_FONT."
    )
    return None


@functools.lru_cache(maxsize=32)
def _font(source: tuple[str, int] | None, size: int) -> Font:
    if source is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(source[0], size, index=source[1])


def current_font_source() -> tuple[str, int] | None:
    return font_source(settings.FISSION["POSTER_FONT"], settings.FISSION["POSTER_FONT_INDEX"])


def _tokens(text: str) -> list[str]:
    """Words of alphabetic scripts, single characters of CJK (which break anywhere) and
    single spaces, in order."""
    tokens: list[str] = []
    word = ""
    for char in text:
        if char.isspace() or unicodedata.east_asian_width(char) in ("W", "F"):
            if word:
                tokens.append(word)
                word = ""
            tokens.append(" " if char.isspace() else char)
        else:
            word += char
    if word:
        tokens.append(word)
    return tokens


def wrap(text: str, font: Font, width: int, *, max_lines: int) -> list[str]:
    """`text` broken into lines no wider than `width`, at most `max_lines` of them (the
    last ending in an ellipsis when the text is longer)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for piece in _tokens(paragraph.strip()):
            if font.getlength((line + piece).strip()) <= width:
                line += piece
                continue
            if line.strip():
                lines.append(line.strip())
            line = "" if piece.isspace() else piece
            # A word wider than the line on its own is cut between characters.
            while font.getlength(line) > width:
                cut = len(line)
                while cut > 1 and font.getlength(line[:cut]) > width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        if line.strip():
            lines.append(line.strip())
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1]
        lines = [*lines[: max_lines - 1], last.rstrip() + "…"]
    return lines


def _draw_lines(
    draw: ImageDraw.ImageDraw,
    lines: list[str],
    *,
    font: Font,
    top: int,
    fill: tuple[int, int, int],
    line_height: int,
    bold: bool = False,
) -> int:
    """Draw `lines` centred from `top`; return the y below them."""
    for line in lines:
        draw.text(
            (WIDTH // 2, top),
            line,
            font=font,
            fill=fill,
            anchor="ma",
            # A thin stroke in the text's colour makes a bold headline from one face.
            stroke_width=1 if bold else 0,
            stroke_fill=fill,
        )
        top += line_height
    return top


def render_poster(*, headline: str, name_line: str, url: str, reward: str, caption: str) -> bytes:
    """The poster as PNG bytes. `url` is what the QR code holds and what is printed at the
    foot for people who type it; the other texts are drawn as given."""
    source = current_font_source()
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    text_width = WIDTH - 2 * MARGIN

    headline_font = _font(source, 56)
    y = _draw_lines(
        draw,
        wrap(headline, headline_font, text_width, max_lines=3),
        font=headline_font,
        top=80,
        fill=TEXT,
        line_height=74,
        bold=True,
    )
    name_font = _font(source, 34)
    y = _draw_lines(
        draw,
        wrap(name_line, name_font, text_width, max_lines=1),
        font=name_font,
        top=y + 20,
        fill=SOFT_TEXT,
        line_height=46,
    )

    # The white card with the QR code and the caption under it.
    caption_font = _font(source, 28)
    card_top = max(y + 28, 330)
    card_left = (WIDTH - QR_SIZE) // 2 - 24
    card_bottom = card_top + 24 + QR_SIZE + 64
    draw.rounded_rectangle(
        (card_left, card_top, WIDTH - card_left, card_bottom), radius=24, fill=CARD
    )
    code = qr_image(url, size=QR_SIZE).resize((QR_SIZE, QR_SIZE), Image.Resampling.NEAREST)
    image.paste(code, ((WIDTH - QR_SIZE) // 2, card_top + 24))
    draw.text(
        (WIDTH // 2, card_top + 24 + QR_SIZE + 14),
        wrap(caption, caption_font, QR_SIZE, max_lines=1)[0] if caption else "",
        font=caption_font,
        fill=CARD_TEXT,
        anchor="ma",
    )

    reward_font = _font(source, 34)
    _draw_lines(
        draw,
        wrap(reward, reward_font, text_width, max_lines=3),
        font=reward_font,
        top=card_bottom + 40,
        fill=TEXT,
        line_height=48,
    )
    url_font = _font(source, 24)
    _draw_lines(
        draw,
        wrap(url, url_font, text_width, max_lines=1),
        font=url_font,
        top=HEIGHT - 72,
        fill=SOFT_TEXT,
        line_height=32,
    )

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
