"""Unit tests for redrive.triggers.templating: plain strings, strict rendering, data never compiled,
the sandbox, filters."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redrive.triggers.templating import (
    _ENV,
    RenderError,
    Template,
    _fast_render,
    _paths_only,
    compile_filter,
    compile_template,
    compile_tree,
    render_tree,
)

# JSON-like trees whose strings hold no template markers (no "{" at all), so rendering must give them back as is.
PLAIN_TEXT = st.text(alphabet=st.characters(blacklist_characters="{", blacklist_categories=["Cs"]))
JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | PLAIN_TEXT
JSON = st.recursive(
    JSON_LEAVES, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
)


@pytest.mark.parametrize(
    "source", ["", "hello", "POST", "a } b { c", "a }} b", "50% off", "${NOT_EXPANDED_HERE}", "line\n"]
)
def test_plain_strings_are_not_compiled(source: str) -> None:
    template = compile_template(source)
    assert template._render is None
    assert template.render({}) == source
    assert template.render({"payload": {"x": 1}}) == source


def test_templates_render_against_the_context() -> None:
    template = compile_template("http://127.0.0.1:9000/send/{{ payload.instance }}?n={{ payload.n + 1 }}")
    assert template.render({"payload": {"instance": "inst-1", "n": 41}}) == "http://127.0.0.1:9000/send/inst-1?n=42"


def test_trailing_newline_is_kept() -> None:
    assert compile_template("Hi {{ name }}\n").render({"name": "Ann"}) == "Hi Ann\n"


def test_output_is_not_html_escaped() -> None:
    assert compile_template("{{ payload.t }}").render({"payload": {"t": "<b>&'\"</b>"}}) == "<b>&'\"</b>"


@pytest.mark.parametrize(
    ("source", "context", "missing"),
    [
        ("Hi {{ payload.name }}", {"payload": {}}, "name"),
        ("{{ payload.data.key.id }}", {"payload": {"data": {}}}, "key"),
        ("{{ nothing }}", {}, "nothing"),
        ("{{ payload.items[3] }}", {"payload": {"items": [1]}}, ""),
    ],
)
def test_a_missing_field_is_a_render_error_naming_the_template(
    source: str, context: dict[str, Any], missing: str
) -> None:
    template = compile_template(source)
    with pytest.raises(RenderError) as caught:
        template.render(context)
    assert repr(source) in str(caught.value)
    assert missing in str(caught.value)


def test_a_python_error_while_rendering_is_a_render_error() -> None:
    template = compile_template("{{ payload.n / 0 }}")
    with pytest.raises(RenderError, match="ZeroDivisionError") as caught:
        template.render({"payload": {"n": 1}})
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


@pytest.mark.parametrize(
    "value", ["{{ 7*7 }}", "{% for x in range(3) %}{{ x }}{% endfor %}", "{# c #}", "{{ ''.__class__ }}"]
)
def test_payload_values_are_rendered_literally(value: str) -> None:
    assert compile_template("{{ payload.text }}").render({"payload": {"text": value}}) == value


@settings(database=None)
@given(st.text())
def test_any_payload_string_comes_out_unchanged(value: str) -> None:
    assert compile_template("{{ payload.text }}").render({"payload": {"text": value}}) == value


@settings(database=None)
@given(JSON)
def test_render_tree_without_templates_is_the_identity(tree: Any) -> None:
    assert render_tree(compile_tree(tree), {}) == tree


def test_render_tree_keeps_shape_and_non_string_leaves() -> None:
    tree = compile_tree(
        {
            "number": "{{ payload.to }}",
            "text": "hello",
            "options": [1, 2.5, True, None, {"delay": "{{ payload.delay * 2 }}"}],
            "empty": {},
        }
    )
    assert isinstance(tree["number"], Template)
    rendered = render_tree(tree, {"payload": {"to": "123@s.whatsapp.net", "delay": 3}})
    assert rendered == {
        "number": "123@s.whatsapp.net",
        "text": "hello",
        "options": [1, 2.5, True, None, {"delay": "6"}],
        "empty": {},
    }


def test_render_tree_raises_for_a_missing_field_anywhere() -> None:
    tree = compile_tree({"a": ["ok", {"b": "{{ payload.missing }}"}]})
    with pytest.raises(RenderError, match="missing"):
        render_tree(tree, {"payload": {}})


@pytest.mark.parametrize(
    ("source", "payload", "expected"),
    [
        ("payload.event == 'messages.upsert'", {"event": "messages.upsert"}, True),
        ("payload.event == 'messages.upsert'", {"event": "connection.update"}, False),
        ("payload.count", {"count": 3}, True),
        ("payload.count", {"count": 0}, False),
        ("payload.tags", {"tags": ["a"]}, True),
        ("payload.tags", {"tags": []}, False),
        ("payload.name", {"name": ""}, False),
        ("'vip' in payload.tags and payload.total > 100", {"tags": ["vip"], "total": 101}, True),
        ("payload.event is defined", {}, False),
        ("payload.kind | default('x') == 'x'", {}, True),
    ],
)
def test_filters_evaluate_to_bool(source: str, payload: Any, expected: bool) -> None:
    result = compile_filter(source).matches({"payload": payload, "headers": {}})
    assert result is expected


def test_filters_see_the_headers() -> None:
    flt = compile_filter("headers['x-github-event'] == 'push'")
    assert flt.matches({"payload": {}, "headers": {"x-github-event": "push"}}) is True


def test_a_filter_on_a_missing_field_is_a_render_error() -> None:
    # StrictUndefined applies to filters too: comparing a missing field is an error, not False.
    with pytest.raises(RenderError, match="event"):
        compile_filter("payload.event == 'x'").matches({"payload": {}, "headers": {}})


@pytest.mark.parametrize("source", ["{{ x", "{% if %}", "{{ 1 + }}", "{% for x in y %}", "{{ x | nosuchfilter }}"])
def test_malformed_templates_are_refused_at_compile_time(source: str) -> None:
    with pytest.raises(ValueError, match="does not compile"):
        compile_template(source)


@pytest.mark.parametrize("source", ["payload.x == (", "payload.x ==", "1 +", "payload.x }}{{ payload.y"])
def test_malformed_filters_are_refused_at_compile_time(source: str) -> None:
    with pytest.raises(ValueError, match="does not compile"):
        compile_filter(source)


def test_a_filter_syntax_error_describes_the_filter_as_written() -> None:
    with pytest.raises(ValueError, match="does not compile") as caught:
        compile_filter("payload.x == (")
    assert "'}'" not in str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        "{{ payload.__class__ }}",
        "{{ ''.__class__ }}",
        "{{ x._private }}",
        "{{ x['__class__'] }}",
        "{{ payload.__class__.__mro__[1].__subclasses__() }}",
        "{% if payload.__dict__ %}x{% endif %}",
        "{{ (payload|attr('__class__')).__name__ }}",
    ],
)
def test_private_attributes_are_refused_at_compile_time(source: str) -> None:
    with pytest.raises(ValueError, match="private attribute"):
        compile_template(source)


@pytest.mark.parametrize("source", ["payload.__class__", "payload['_x'] == 1", "headers._x"])
def test_filters_reaching_private_attributes_are_refused(source: str) -> None:
    with pytest.raises(ValueError, match="private attribute"):
        compile_filter(source)


@pytest.mark.parametrize(
    "source",
    [
        "{{ payload|attr('__class__') }}",
        "{{ payload['__cl' ~ 'ass__'] }}",
        "{{ payload|attr('__init__') }}",
        "{{ payload.update({'hacked': 1}) }}",
        "{{ payload.clear() }}",
        "{{ payload['items'].append(1) }}",
    ],
)
def test_the_sandbox_refuses_what_compiles(source: str) -> None:
    payload: dict[str, Any] = {"items": [0], "a": 1}
    template = compile_template(source)
    with pytest.raises(RenderError, match="unsafe") as caught:
        template.render({"payload": payload})
    assert "<class" not in str(caught.value)
    assert payload == {"items": [0], "a": 1}, "the sandbox is immutable: the payload is unchanged"


def test_a_filter_using_attr_tricks_is_refused_when_evaluated() -> None:
    flt = compile_filter("payload|attr('__class__')")
    with pytest.raises(RenderError, match="unsafe"):
        flt.matches({"payload": {}, "headers": {}})


def test_a_payload_string_that_looks_like_a_template_is_not_evaluated_by_a_filter() -> None:
    flt = compile_filter("payload.text == '{{ 7*7 }}'")
    assert flt.matches({"payload": {"text": "{{ 7*7 }}"}, "headers": {}}) is True
    assert flt.matches({"payload": {"text": "49"}, "headers": {}}) is False


# Field paths are looked up directly, not through Jinja (``templating._path_render``): these must render exactly as
# Jinja renders them, value or error. The reference is the same source rendered by Jinja alone.
def _by_jinja(source: str) -> Template:
    return Template(source, _fast_render(_ENV.from_string(source)))


def _outcome(template: Template, context: dict[str, Any]) -> tuple[str, str]:
    try:
        return "rendered", template.render(context)
    except RenderError as exc:
        return "error", str(exc)


NAMES = st.sampled_from(["payload", "event", "headers", "missing", "range"])  # ``range``: one of Jinja's globals
KEYS = st.sampled_from(["a", "b", "items", "keys", "get", "0", "upper", "x-y"])  # dict's own attribute names too
STEPS = st.one_of(
    KEYS.filter(str.isidentifier).map(lambda key: f".{key}"),
    KEYS.map(lambda key: f"[{key!r}]"),
    st.integers(0, 2).map(lambda index: f".{index}"),
    st.integers(0, 2).map(lambda index: f"[{index}]"),
)
FIELDS = st.builds(lambda name, steps: name + "".join(steps), NAMES, st.lists(STEPS, max_size=4))
SOURCES = st.lists(
    st.one_of(FIELDS.map(lambda field: "{{ " + field + " }}"), st.sampled_from(["", "/", "id=", " x "])), min_size=1
).map("".join)
TREES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.sampled_from(["", "abc", "{{ a }}"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400)
@given(SOURCES, TREES, TREES)
def test_field_paths_render_as_jinja_renders_them(source: str, payload: Any, event: Any) -> None:
    context = {"payload": payload, "event": event, "headers": {"a": "1", "keys": "2"}}
    assert _outcome(compile_template(source), context) == _outcome(_by_jinja(source), context)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ payload.a }}", "1"),
        ("{{ payload['items'] }}", "[1, 2]"),  # a subscript finds the key
        ("{{ payload.items[1] }}", None),  # ``.items`` is the dict's method, in Jinja as here
        ("{{ payload.keys }}", None),
        ("{{ payload.l.1 }}/{{ payload.l[0] }}", "b/a"),
        ("{{ payload.s[1] }}", "b"),
        ("{{ payload.n }} {{ payload.t }} {{ payload.f }}", "None True 1.5"),
        ("{{ payload.d }}", "{'k': [1]}"),
        ("{{ payload.a.b }}", None),  # an int has no field: Jinja's error
        ("{{ payload.missing }}", None),
    ],
)
def test_field_paths_follow_the_sandbox_rules(source: str, expected: str | None) -> None:
    payload = {"a": 1, "items": [1, 2], "keys": 3, "l": ["a", "b"], "s": "abc", "n": None, "t": True, "f": 1.5}
    context = {"payload": {**payload, "d": {"k": [1]}}}
    reference = _outcome(_by_jinja(source), context)
    assert _outcome(compile_template(source), context) == reference
    if expected is not None:
        assert reference == ("rendered", expected)


@pytest.mark.parametrize(
    ("source", "direct"),
    [
        ("{{ payload.customer.id }}", True),
        ("/send/{{ payload['instance'] }}?n={{ payload.items.0 }}", False),  # ``.items``: dict's own attribute
        ("/send/{{ payload['instance'] }}?n={{ payload.l.0 }}", True),
        ("{{ payload.n + 1 }}", False),
        ("{{ payload.id | string }}", False),
        ("{% if payload.a %}x{% endif %}", False),
        ("{{ payload[key] }}", False),
    ],
)
def test_only_text_and_field_paths_are_looked_up_directly(source: str, direct: bool) -> None:
    assert (_paths_only(_ENV.parse(source)) is not None) is direct
