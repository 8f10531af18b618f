"""The expression language of spec language 1.1 (graphspec/expr.py): parsed by graphspec, total, bounded."""

from __future__ import annotations

import time

import pytest

from graphspec import expr
from graphspec.expr import ExprError, evaluate, parse, substitute

SCOPE = {"filters": 64, "strides": 2, "widths": [64, 128, 256, 512], "i": 1, "basic": False, "name": "conv",
         "rate": 0.5}


@pytest.mark.parametrize("text, value", [
    ("filters * 4", 256),
    ("filters // 3", 21),
    ("filters / 4", 16.0),
    ("filters % 10", 4),
    ("2 ** 10", 1024),
    ("-filters + 1", -63),
    ("(1 + 2) * 3", 9),
    ("1 + 2 * 3", 7),
    ("2 ** 3 ** 2", 512),  # right-associative, as in Python
    ("-2 ** 2", -4),
    ("widths[i]", 128),
    ("widths[-1]", 512),
    ("len(widths)", 4),
    ("min(filters, 32)", 32),
    ("max(widths)", 512),
    ("min(3, 2.5)", 2.5),
    ("abs(-3)", 3),
    ("int(rate * 10)", 5),
    ("float(filters)", 64.0),
    ("round(2.675, 2)", 2.67),
    ("round(rate * 3)", 2),
    ("strides if i == 0 else 1", 1),
    ("strides != 1 or not basic", True),
    ("strides == 2 and basic", False),
    ("filters >= 64", True),
    ("'same' if basic else 'valid'", "valid"),
    ("name + '_x'", "conv_x"),
    ("str(i + 1)", "2"),
    ("[1, 2, 3][i]", 2),
    ("true", True),
    ("null", None),
    ("1e-3", 0.001),
    ("1 == 1.0", True),
    ("1 == true", False),  # a bool is not a number here
])
def test_values(text: str, value) -> None:
    result = evaluate(parse(text), SCOPE)
    assert result == value and type(result) is type(value)


def test_whole_expression_keeps_its_type_and_pieces_are_text() -> None:
    assert substitute("${filters * 4}", SCOPE) == 256
    assert substitute("${basic}", SCOPE) is False
    assert substitute("${widths}", SCOPE) == [64, 128, 256, 512]
    assert substitute("block${i + 1}", SCOPE) == "block2"
    assert substitute("${name}_${i}_${basic}", SCOPE) == "conv_1_false"
    assert substitute("plain text", SCOPE) == "plain text"
    assert substitute("cost: $${not evaluated}", SCOPE) == "cost: ${not evaluated}"
    assert substitute("${'}' + name}", SCOPE) == "}conv"  # a brace inside a string does not close


def test_omit_only_as_a_whole_value() -> None:
    assert substitute("${omit if strides == 2 else strides}", SCOPE) is expr.OMIT
    with pytest.raises(ExprError, match="cannot be part of a text"):
        substitute("x${omit}", SCOPE)
    with pytest.raises(ExprError, match="item of a list"):
        substitute("${[omit]}", SCOPE)


@pytest.mark.parametrize("text, code, message", [
    ("filters +", "bad-expression", "ends too early"),
    ("filters $ 2", "bad-expression", "unexpected character"),
    ("(filters", "bad-expression", "expected ')'"),
    ("filtres * 2", "unknown-parameter", "unknown name 'filtres'"),
    ("maxx(1, 2)", "bad-expression", "unknown function 'maxx'"),
    ("filters / 0", "expression-value", "division by zero"),
    ("widths[4]", "expression-value", "out of range"),
    ("widths['a']", "expression-type", "an index must be an int"),
    ("filters[0]", "expression-type", "only lists and strings can be indexed"),
    ("filters + 'a'", "expression-type", "needs numbers"),
    ("filters if 1 else 2", "expression-type", "must be true or false"),
    ("not filters", "expression-type", "must be true or false"),
    ("1 < 2 < 3", "bad-expression", "do not chain"),
    ("2 ** 100", "expression-overflow", "exponent 100 is too large"),
    ("2 ** 60", "expression-overflow", "beyond 2**53"),
    ("9007199254740992 * 2", "expression-overflow", "beyond 2**53"),
    ("99999999999999999999", "expression-overflow", "too large"),
    ("1e300 * 1e300", "expression-overflow", "not finite"),
    ("'ab' + 'c'", None, None),
    ("", "bad-expression", "empty expression"),
    ("__import__('os')", "bad-expression", "unknown function '__import__'"),
    ("name.upper()", "bad-expression", "unexpected character"),
])
def test_errors(text: str, code: str | None, message: str | None) -> None:
    if code is None:
        assert evaluate(parse(text), SCOPE) == "abc"
        return
    with pytest.raises(ExprError) as info:
        evaluate(parse(text), SCOPE)
    assert info.value.code == code
    assert message in info.value.message


def test_did_you_mean_for_unknown_names() -> None:
    with pytest.raises(ExprError) as info:
        substitute("${filtres}", SCOPE, lambda name: f"did you mean 'filters'?" if name == "filtres" else None)
    assert info.value.hint == "did you mean 'filters'?"
    assert info.value.column == 2  # inside the string: after '${'


def test_unclosed_template() -> None:
    with pytest.raises(ExprError, match="not closed"):
        substitute("${filters", SCOPE)


def test_string_growth_is_bounded() -> None:
    with pytest.raises(ExprError) as info:
        evaluate(parse("s + s"), {"s": "a" * 600})
    assert info.value.code == "expression-overflow"


def test_hostile_expressions_are_refused_in_bounded_time() -> None:
    start = time.perf_counter()
    assert evaluate(parse("1+" * 499 + "1"), SCOPE) == 500  # long but flat: fine
    for text in ("(" * 5_000 + "1" + ")" * 5_000, "-" * 900 + "1", "not " * 200 + "true",
                 "[" * 100 + "]" * 100, "x" * 2_000):
        with pytest.raises(ExprError) as info:
            evaluate(parse(text), SCOPE)
        assert info.value.code in ("expression-too-large", "unknown-parameter")
    assert time.perf_counter() - start < 1.0


def test_no_eval_no_attributes_no_loops() -> None:
    """The grammar has no way to reach Python objects: attribute access and lambdas do not parse."""
    for text in ("().__class__", "lambda: 1", "[x for x in widths]", "widths.append(1)", "filters; 1"):
        with pytest.raises(ExprError):
            evaluate(parse(text), SCOPE)
