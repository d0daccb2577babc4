"""The key codec against the shared vectors (tests/key_vectors.json), as the C++ codec is."""

import datetime
import json
from pathlib import Path

import pytest

from kck import codec
from kck.exceptions import InvalidKey, KeyParameterMismatch
from kck.params import (BoolParameter, DateParameter, IntParameter, StrParameter, make_parameter)

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "key_vectors.json").read_text(encoding="utf-8"))


def _pairs(params):
    return [(p["name"], p["type"]) for p in params]


@pytest.mark.parametrize("v", VECTORS["valid"], ids=lambda v: v["key"][:40])
def test_valid_vector(v):
    params = _pairs(v["params"])
    assert codec.encode_key(v["primer"], params, v["values"]) == v["key"]
    assert codec.decode_key(v["key"], v["primer"], params) == v["values"]


@pytest.mark.parametrize("v", VECTORS["invalid"], ids=lambda v: v["key"][:40])
def test_invalid_vector(v):
    with pytest.raises(InvalidKey) as e:
        codec.decode_key(v["key"], v["primer"], _pairs(v["params"]))
    message = str(e.value)
    assert message.startswith('primer "%s": ' % v["primer"]), message
    assert v["error_contains"] in message, message
    assert "\n" not in message


def test_vector_counts():
    assert len(VECTORS["valid"]) >= 60 and len(VECTORS["invalid"]) >= 80


def test_typed_values_round_trip():
    params = [IntParameter("a"), StrParameter("b"), BoolParameter("c"), DateParameter("d")]
    texts = [p.to_text(v, "t") for p, v in zip(params, [-7, "x/y%", False, datetime.date(2024, 2, 29)])]
    key = codec.encode_key("t", [(p.name, p.type) for p in params], texts)
    assert key == "t/-7/x%2Fy%25/false/2024-02-29"
    values = codec.decode_key(key, "t", [(p.name, p.type) for p in params])
    assert [p.from_text(v) for p, v in zip(params, values)] == [-7, "x/y%", False, datetime.date(2024, 2, 29)]


def test_dict_parameters_follow_from_str():
    assert type(make_parameter({"name": "id", "from_str": int})) is IntParameter
    assert type(make_parameter({"name": "q"})) is StrParameter
    assert type(make_parameter({"name": "q", "from_str": str})) is StrParameter
    assert type(make_parameter({"name": "f", "from_str": bool})) is BoolParameter
    assert type(make_parameter({"name": "d", "from_str": datetime.date.fromisoformat})) is DateParameter
    assert type(make_parameter({"name": "d", "type": "date"})) is DateParameter
    custom = make_parameter({"name": "tags", "from_str": lambda s: s.split(","), "to_str": ",".join})
    assert type(custom) is StrParameter
    assert custom.from_text("a,b") == ["a", "b"]
    assert custom.to_text(["a", "b"], "p") == "a,b"


@pytest.mark.parametrize("bad, value", [(IntParameter("a"), True), (IntParameter("a"), 1.0),
                                        (BoolParameter("b"), 1), (DateParameter("d"), datetime.datetime(2024, 1, 1)),
                                        (StrParameter("s"), 5)])
def test_wrong_python_types_are_rejected(bad, value):
    with pytest.raises(KeyParameterMismatch, match="expects"):
        bad.to_text(value, "p")


def test_quote_for_error_keeps_one_line():
    assert codec.quote_for_error('a"b\\c\nd') == '"a\\"b\\\\c\\x0ad"'
    long = codec.quote_for_error("x" * 100)
    assert long.endswith('"...') and len(long) == 80 + 5
    assert codec.quote_for_error("\ud800") == '"\\xed\\xa0\\x80"'


def test_lone_surrogate_is_invalid_utf8():
    with pytest.raises(KeyParameterMismatch, match="invalid UTF-8 at offset 1"):
        codec.check_canonical("p", "s", "str", "a\ud800")
