"""Markdown to safe HTML for finished messages: no script, no remote images, no tracking links.

Model output is untrusted (OWASP LLM05): a reply can carry HTML or a Markdown image whose URL
leaks the conversation to a third party the moment the browser loads it. markdown-it parses with
raw HTML disabled, and nh3 (ammonia) keeps only a small allow-list of tags and attributes. Images
become plain links the user can choose to follow.
"""

from __future__ import annotations

from functools import cache
from html import escape
from typing import Any

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote", "a",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "span",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "th": {"align", "style"},
    "td": {"align", "style"},
    "ol": {"start"},
}
# markdown-it aligns table cells with inline styles; only text-align survives cleaning.
ALLOWED_STYLE_PROPERTIES = {"text-align"}
ALLOWED_SCHEMES = {"http", "https", "mailto"}


@cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table").enable("strikethrough")
    md.add_render_rule("image", _render_image_as_link)
    md.add_render_rule("link_open", _render_link_with_destination)
    return md


def _render_link_with_destination(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    """Links show where they go on hover: a reply can hide data in a URL the text disguises."""
    token = tokens[idx]
    if not token.attrGet("title"):
        token.attrSet("title", str(token.attrGet("href") or ""))
    return str(self.renderToken(tokens, idx, options, env))


def _render_image_as_link(self: object, tokens: Any, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = token.content or "image"
    return f'<a href="{escape(src, quote=True)}" title="{escape(src, quote=True)}">[image: {escape(alt)}]</a>'


def render_markdown(text: str) -> str:
    html = _parser().render(text)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties=ALLOWED_STYLE_PROPERTIES,
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
