"""HTML fragment -> plain text, with the standard library only.

Catalog descriptions are HTML fragments written by merchants (Magento ``description``, Shopify
``Body (HTML)``, WooCommerce ``Description``). Prompts need plain text: tags stripped, entities
unescaped, ``<script>``/``<style>`` content dropped, block boundaries (``<p>``, ``<br>``,
``<li>``...) turned into spaces so that words on both sides do not run together, and all
whitespace collapsed to single spaces.

``html_to_text`` is memoised: variants of one product usually share one description, and the
parser is the most expensive step of catalog parsing.
"""

from __future__ import annotations

import re
from functools import lru_cache
from html import unescape
from html.parser import HTMLParser

__all__ = ["html_to_text"]

_WS = re.compile(r"\s+")

# Elements whose boundaries separate words. Inline elements (<b>, <span>, <a>...) do not.
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
        "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
        "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "img",
    }
)
# Elements whose text content is never visible.
_SKIP_TAGS = frozenset({"script", "style", "template", "noscript", "head", "title"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def reset(self) -> None:  # called by HTMLParser.__init__ as well
        super().reset()
        self.parts = []
        self._skip_depth = 0

    def handle_starttag(self, tag, attrs):  # noqa: ARG002 - HTMLParser API
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag, attrs):  # noqa: ARG002
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            if self._skip_depth:
                self._skip_depth -= 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data):
        if not self._skip_depth:
            self.parts.append(data)


@lru_cache(maxsize=65536)
def html_to_text(value: str) -> str:
    """Return the visible text of an HTML fragment as one line of plain text.

    >>> html_to_text("<p>Warm &amp; dry.</p><ul><li>Hood</li><li>Zip</li></ul>")
    'Warm & dry. Hood Zip'
    """
    if not value:
        return ""
    if "<" not in value:
        # Plain text (possibly with entities): no parser needed.
        text = unescape(value) if "&" in value else value
        return _WS.sub(" ", text).strip()
    parser = _TextExtractor()  # one per call: cheap, and safe under threads
    try:
        parser.feed(value)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # pragma: no cover - HTMLParser is very tolerant; belt and braces
        text = re.sub(r"<[^>]*>", " ", unescape(value))
    # &nbsp; becomes U+00A0, which \s matches, so it collapses like any other space.
    return _WS.sub(" ", text).strip()
