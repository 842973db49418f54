from __future__ import annotations

import io
from xml.etree import ElementTree

from PIL import Image
from pyzbar.pyzbar import decode

from apps.common.qr import qr_image, qr_png, qr_svg

URL = "https://fission.example.com/r/k7m2x9qa"


def test_the_png_decodes_back_to_the_link():
    image = Image.open(io.BytesIO(qr_png(URL)))
    assert image.format == "PNG"
    assert [symbol.data.decode() for symbol in decode(image)] == [URL]


def test_an_image_of_the_asked_size_decodes_back_to_the_link():
    image = qr_image(URL, size=300)
    assert 200 <= image.width <= 300
    assert [symbol.data.decode() for symbol in decode(image)] == [URL]


def test_the_svg_is_a_standalone_document():
    root = ElementTree.fromstring(qr_svg(URL))  # noqa: S314 (our own output)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.find("{http://www.w3.org/2000/svg}path") is not None
    assert root.get("viewBox")
