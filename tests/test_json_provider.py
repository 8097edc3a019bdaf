"""JSON responses (app/json_provider.py): orjson writes the JSON Flask's own provider wrote,
byte for byte where the text is ASCII (beyond it, UTF-8 instead of escapes)."""
from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import uuid

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider
from hypothesis import given, settings
from hypothesis import strategies as st

from app.json_provider import OrjsonProvider

_flask = Flask("reference")
_ours = Flask("ours")
_ours.json = OrjsonProvider(_ours)


def documents(text):
    """JSON documents whose strings come from text."""
    leaves = st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | text
    return st.recursive(
        leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=25
    )


ascii_text = st.text(alphabet=st.characters(max_codepoint=0x7E))  # DEL is escaped by Flask
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))  # lone surrogates: below


def bodies(value) -> tuple[bytes, bytes]:
    """(Flask's response body, ours) for one value."""
    with _flask.app_context():
        reference = DefaultJSONProvider(_flask).response(value)
    with _ours.app_context():
        ours = _ours.json.response(value)
    assert ours.mimetype == reference.mimetype == "application/json"
    return reference.get_data(), ours.get_data()


@settings(max_examples=1000, deadline=None)
@given(documents(ascii_text))
def test_ascii_documents_are_encoded_byte_for_byte_as_flask_does(value):
    reference, ours = bodies(value)
    assert ours == reference


@settings(max_examples=1000, deadline=None)
@given(documents(any_text))
def test_any_document_is_the_same_json(value):
    reference, ours = bodies(value)
    # The same values, keys in the same order.
    assert json.loads(ours, object_pairs_hook=list) == json.loads(reference, object_pairs_hook=list)


def test_text_past_ascii_is_utf8_not_escapes():
    reference, ours = bodies({"body": "héllo 😀", "html": "\u2028\x7f"})
    assert reference == b'{"body":"h\\u00e9llo \\ud83d\\ude00","html":"\\u2028\\u007f"}\n'
    assert ours == '{"body":"héllo 😀","html":"\u2028\x7f"}\n'.encode()


@pytest.mark.parametrize("value", [
    {"messages": [{"body": "hello <b>", "html": "<p>a&amp;b</p>", "id": 1, "mentions": []}], "has_more": True},
    {"ctl": "\x00\x1f\t\n\"\\/"},
    {2: "non-string keys", 10: "sorted as Flask sorts them"},  # orjson refuses: Flask's provider
    {"big": 2**70},                                            # past 64 bits: Flask's provider
    {"lone": "\ud800"},                                        # a lone surrogate: Flask's provider
    {"when": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc), "day": datetime.date(2026, 1, 2)},
    {"id": uuid.UUID(int=7), "amount": decimal.Decimal("1.50")},
    [dataclasses.make_dataclass("P", ["x"])(1)],
])
def test_edge_cases(value):
    reference, ours = bodies(value)
    assert ours == reference


def test_unencodable_values_still_raise():
    with _ours.app_context(), pytest.raises(TypeError):
        _ours.json.response({"x": object()})


def test_debug_mode_keeps_flask_indentation():
    app = Flask("debug")
    app.json = OrjsonProvider(app)
    app.debug = True
    with app.app_context():
        assert app.json.response({"a": [1]}).get_data() == b'{\n  "a": [\n    1\n  ]\n}\n'


def test_the_app_uses_it(app):
    assert isinstance(app.json, OrjsonProvider)
