"""Message rendering: the markdown subset, the sanitiser's allowlist, mention chips and parsing."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.lib.render import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    URL_SCHEMES,
    parse_message,
    render_message,
    sanitize,
)

REL = "noopener noreferrer nofollow"
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def find_mentions(text: str) -> list[str]:
    """The names a message body mentions, as the send action sees them."""
    return parse_message(text).mentions


class _Elements(HTMLParser):
    """Collects every start tag with its attributes, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, attrs))


def elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """The (tag, attributes) pairs in html."""
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.elements


def href_scheme(value: str) -> str | None:
    """The scheme a browser would see in an href (it ignores whitespace and control chars)."""
    cleaned = re.sub(r"[\x00-\x20\x7f]", "", value)
    match = _SCHEME_RE.match(cleaned)
    return match.group(1).lower() if match else None


def assert_only_allowed(html: str) -> None:
    """No tag, attribute or URL scheme outside the allowlist survives in html."""
    for tag, attrs in elements(html):
        assert tag in ALLOWED_TAGS, (tag, html)
        for name, value in attrs:
            if tag == "a" and name == "rel":
                assert value == REL, html
            elif tag == "span" and name == "class":
                assert value == "mention", html
            else:
                assert name in ALLOWED_ATTRIBUTES.get(tag, set()), (tag, name, html)
            if name == "href":
                scheme = href_scheme(value or "")
                assert scheme is None or scheme in URL_SCHEMES, (value, html)
        if tag == "a" and any(name == "href" for name, _ in attrs):
            assert ("rel", REL) in attrs, html


# --- The markdown subset ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("body", "html"),
    [
        ("**bold**", "<p><strong>bold</strong></p>"),
        ("__bold__", "<p><strong>bold</strong></p>"),
        ("*italic*", "<p><em>italic</em></p>"),
        ("_italic_", "<p><em>italic</em></p>"),
        ("`code`", "<p><code>code</code></p>"),
        ("```\nline 1\nline 2\n```", "<pre><code>line 1\nline 2\n</code></pre>"),
        ("```python\nx = 1\n```", "<pre><code>x = 1\n</code></pre>"),
        ("> quoted", "<blockquote>\n<p>quoted</p>\n</blockquote>"),
        ("- one\n- two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"),
        ("1. one\n2. two", "<ol>\n<li>one</li>\n<li>two</li>\n</ol>"),
        ("3. three", '<ol start="3">\n<li>three</li>\n</ol>'),
        ("first\nsecond", "<p>first<br>\nsecond</p>"),
    ],
)
def test_markdown_subset(body, html):
    assert render_message(body) == html


def test_links_get_rel_noopener_noreferrer_nofollow():
    html = render_message('[docs](https://example.com/docs "The docs")')
    assert html == (
        '<p><a href="https://example.com/docs" title="The docs" rel="noopener noreferrer nofollow">docs</a></p>'
    )


def test_bare_urls_become_links_with_rel():
    html = render_message("see https://example.com/a?b=1 now")
    assert '<a href="https://example.com/a?b=1" rel="noopener noreferrer nofollow">' in html


def test_mailto_links_are_allowed():
    html = render_message("[write](mailto:team@example.com)")
    assert '<a href="mailto:team@example.com" rel="noopener noreferrer nofollow">write</a>' in html


def test_images_are_not_rendered():
    html = render_message("![logo](https://example.com/logo.png)")
    assert "<img" not in html
    assert "logo" in html  # the alt text stays readable


@pytest.mark.parametrize("body", ["# Heading", "Title\n=====", "---", "***"])
def test_headings_and_rules_stay_text(body):
    html = render_message(body)
    assert not re.search(r"<h[1-6]|<hr", html)
    assert_only_allowed(html)


def test_raw_html_is_shown_as_text():
    html = render_message("I wrote <b>bold</b> and <i>this</i>")
    assert "<b>" not in html and "<i>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html


def test_html_in_code_is_escaped():
    assert render_message("`<script>alert(1)</script>`") == (
        "<p><code>&lt;script&gt;alert(1)&lt;/script&gt;</code></p>"
    )
    assert render_message("```\n<b>x</b>\n```") == "<pre><code>&lt;b&gt;x&lt;/b&gt;\n</code></pre>"


def test_strikethrough_survives_sanitising():
    html = render_message("~~gone~~")
    assert "<del>gone</del>" in html or "<s>gone</s>" in html


# --- XSS corpus --------------------------------------------------------------------------

XSS_CORPUS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",
    "<<script>script>alert(1)//<</script>",
    '"><script>alert(1)</script>',
    "<img src=x onerror=alert(1)>",
    '<img src="x" onerror="alert(1)"',
    "<svg/onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<iframe src="javascript:alert(1)"></iframe>',
    "<iframe srcdoc='<script>alert(1)</script>'>",
    "<style>body{display:none}</style>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<p style="color:red" onclick="alert(1)">x</p>',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "<object data=x.swf></object><embed src=x.swf>",
    "<form action=javascript:alert(1)><button>go</button></form>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:/">',
    "<!-- <script>alert(1)</script> -->",
    "<details open ontoggle=alert(1)>",
    "<body onload=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<marquee onstart=alert(1)>x</marquee>",
    '<span class="mention evil" onmouseover="alert(1)" style="x">@x</span>',
    "<a href='x",
    "<b><i>unclosed",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java&#115;cript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](java%0ascript:alert(1))",
    "[x](%6Aavascript:alert(1))",
    "[x](  javascript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x](\tjavascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](DATA:text/html,<script>alert(1)</script>)",
    "[x](vbscript:msgbox(1))",
    "[x](VbScRiPt:msgbox(1))",
    "<javascript:alert(1)>",
    "<vbscript:msgbox(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "![x](javascript:alert(1))",
    '![x](https://example.com/x.png" onerror="alert(1))',
    '[x](https://example.com "a\\" onmouseover=\\"alert(1)")',
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    "**<script>alert(1)</script>**",
    "> <iframe src=https://evil.example>",
    "- <img src=x onerror=alert(1)>",
    "`</code><script>alert(1)</script>`",
    "@<script>alert(1)</script>",
]


@pytest.mark.parametrize("body", XSS_CORPUS)
def test_xss_corpus_renders_only_allowed_markup(body):
    html = render_message(body, {"x": "x"})
    assert_only_allowed(html)
    assert not re.search(r"<\s*(script|style|iframe|svg|math|img|object|embed|form|meta|base)", html, re.I)


@pytest.mark.parametrize("body", XSS_CORPUS)
def test_sanitize_alone_strips_raw_html_attacks(body):
    """The sanitiser is the last line even if the markdown layer ever let raw HTML through."""
    assert_only_allowed(sanitize(body))


@pytest.mark.parametrize(
    "body",
    ["[x](javascript:alert(1))", "[x](JaVaScRiPt:alert(1))", "[x](data:text/html,hi)", "[x](vbscript:x)"],
)
def test_dangerous_links_are_not_links(body):
    html = render_message(body)
    assert "<a" not in html
    assert "[x](" in html  # shown as typed


def test_sanitize_keeps_the_allowed_markup():
    html = sanitize(
        '<p><strong>a</strong> <em>b</em> <code>c</code></p><ol start="2"><li>d</li></ol>'
        '<span class="mention" data-username="bob">@bob</span><a href="https://e.com" title="t">e</a>'
    )
    assert "<strong>a</strong>" in html and "<em>b</em>" in html and "<code>c</code>" in html
    assert '<ol start="2">' in html
    assert '<span class="mention" data-username="bob">@bob</span>' in html
    assert '<a href="https://e.com" title="t" rel="noopener noreferrer nofollow">e</a>' in html


# --- Mentions -----------------------------------------------------------------------------

def test_mention_chips_only_for_known_names():
    html = render_message("@bob and @eve", {"bob": "bob"})
    assert '<span class="mention" data-username="bob">@bob</span>' in html
    assert "@eve" in html and 'data-username="eve"' not in html


def test_mention_chip_shows_the_canonical_username():
    html = render_message("hi @BOB", {"bob": "Bob"})
    assert '<span class="mention" data-username="Bob">@Bob</span>' in html


@pytest.mark.parametrize(
    "body",
    ["`@bob`", "```\n@bob\n```", "    @bob indented code", "`x @bob y`"],
)
def test_no_mention_inside_code(body):
    parsed = parse_message(body)
    assert parsed.mentions == []
    assert "mention" not in render_message(body, {"bob": "bob"})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("@bob", ["bob"]),
        ("@Bob and @BOB and @bob", ["bob"]),
        ("(@bob), @carol.", ["bob", "carol"]),
        ("**@bob**", ["bob"]),
        ("> @bob", ["bob"]),
        ("mail bob@example.com", []),
        ("mail rené@bob.com", []),
        ("x@bob", []),
        ("@@bob", []),
        ("@" + "a" * 33, []),
        ("@" + "a" * 32, ["a" * 32]),
        ("\\@bob", []),
    ],
)
def test_parse_message_mentions(body, expected):
    assert parse_message(body).mentions == expected


# --- Properties ---------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from([
    "<", ">", "&", '"', "'", "`", "```\n", "*", "_", "~", "[", "]", "(", ")", "!", "@", "\n", "> ", "- ",
    "1. ", "#", "\\", "javascript:", "data:", "http://", "mailto:", "<script>", "<a href=", "onerror=",
    "<img src=x ", "<svg ", "&#106;", "&lt;", "bob", " ",
])
_MARKUP_TEXT = st.lists(_FRAGMENTS | st.text(max_size=8), max_size=30).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_property_arbitrary_text_renders_only_allowed_tags(text):
    assert_only_allowed(render_message(text, {"bob": "bob"}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_MARKUP_TEXT)
def test_property_markup_soup_renders_only_allowed_tags(text):
    assert_only_allowed(render_message(text, {"bob": "bob"}))


_NAME = st.from_regex(r"[A-Za-z0-9_]{1,32}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("abcXYZ019_@.-+ \n\t(),:é"), max_size=120))
def test_property_find_mentions_lower_case_unique_valid_names(text):
    names = find_mentions(text)
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[a-z0-9_]{1,32}", name)
        # Each name comes from an "@name" that no word character (any script) precedes.
        assert re.search(rf"(?<![\w@])@{re.escape(name)}(?![A-Za-z0-9_])", text, re.I)


@settings(max_examples=200, deadline=None)
@given(st.lists(_NAME, min_size=1, max_size=8))
def test_property_find_mentions_finds_each_name_once_in_order(names):
    text = " ".join(f"@{n}" for n in names)
    expected = list(dict.fromkeys(n.lower() for n in names))
    assert find_mentions(text) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[A-Za-z0-9._+-]{0,20}[A-Za-z0-9_éüßøçñ]", fullmatch=True),
    _NAME,
    st.from_regex(r"(\.[a-z]{2,6})?", fullmatch=True),
)
def test_property_no_mention_in_email_addresses(local, domain, tld):
    assert find_mentions(f"write to {local}@{domain}{tld} today") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@alice hi @Bob @ALICE", ["alice", "bob"]),
        ("alice@example.com", []),
        ("@" + "x" * 33, []),
        ("@a_b-c", ["a_b"]),
        ("@@bob", []),
        ("", []),
    ],
)
def test_find_mentions_examples(text, expected):
    assert find_mentions(text) == expected


def test_find_mentions_ignores_addresses_with_non_ascii_local_part():
    assert find_mentions("write to rené@corp.com") == []
