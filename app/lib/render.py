"""Message markdown: a small safe subset rendered by markdown-it-py, then sanitised by nh3.

Mentions are found while parsing, so "@bob" inside inline code or a code block is
neither a mention nor a chip.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import nh3
from markdown_it import MarkdownIt
from markupsafe import escape

from app.lib.mentions import WILDCARDS, mention_at


ALLOWED_TAGS = {"p", "br", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a", "span", "s", "del"}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "span": {"data-username", "data-wildcard"},
    "ol": {"start"},
}
ALLOWED_CLASSES = {"span": {"mention", "mention-wildcard"}}
URL_SCHEMES = {"http", "https", "mailto"}


def _mention_rule(state, silent: bool) -> bool:
    """Inline rule: '@name' at a word boundary becomes a mention token."""
    name = mention_at(state.src, state.pos)
    if name is None:
        return False
    if not silent:
        token = state.push("mention", "", 0)
        token.content = name
        wildcard = WILDCARDS.get(name.lower())
        if wildcard is not None:
            state.env.setdefault("wildcards", {}).setdefault(wildcard, None)
        else:
            state.env.setdefault("mentions", {}).setdefault(name.lower(), None)
    state.pos += 1 + len(name)
    return True


def _render_mention(renderer, tokens, idx, options, env) -> str:
    name = tokens[idx].content
    known = env.get("known") or {}
    key = name.lower()
    if key in WILDCARDS:
        return (f'<span class="mention mention-wildcard" data-wildcard="{WILDCARDS[key]}">'
                f'@{escape(key)}</span>')
    if key in known:
        return f'<span class="mention" data-username="{escape(known[key])}">@{escape(known[key])}</span>'
    return f"@{escape(name)}"


def _build() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": True})
    md.enable(["linkify", "strikethrough"])
    md.disable(["image", "heading", "lheading", "html_block", "html_inline", "hr", "reference"])
    md.inline.ruler.before("emphasis", "mention", _mention_rule)
    md.add_render_rule("mention", _render_mention)
    return md


_MD = _build()


@dataclass
class ParsedMessage:
    """A parsed body and the lower-cased names it mentions, in order."""

    tokens: list
    env: dict = field(default_factory=dict)

    @property
    def mentions(self) -> list[str]:
        """Lower-cased usernames mentioned outside code, in order of first appearance."""
        return list(self.env.get("mentions", {}))

    @property
    def wildcards(self) -> list[str]:
        """"room" (for @room, @all, @everyone) and/or "here", in order of first appearance."""
        return list(self.env.get("wildcards", {}))


def parse_message(body: str) -> ParsedMessage:
    """Parse a message body once; mentions are known after this."""
    env: dict = {}
    tokens = _MD.parse(body, env)
    return ParsedMessage(tokens=tokens, env=env)


def render_parsed(parsed: ParsedMessage, known: dict[str, str]) -> str:
    """HTML for a parsed body; `known` maps lower-cased names that become chips to usernames."""
    env = dict(parsed.env, known=known)
    html = _MD.renderer.render(parsed.tokens, _MD.options, env)
    return sanitize(html)


def render_message(body: str, known: dict[str, str] | None = None) -> str:
    """Parse and render a body in one step."""
    return render_parsed(parse_message(body), known or {})


def sanitize(html: str) -> str:
    """Drop every tag, attribute and URL scheme outside the allowlist."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ).strip()
