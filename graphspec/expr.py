"""The expression language of spec language 1.1: ``${filters * 4}``, ``${strides if i == 0 else 1}``.

A string that is one whole ``${...}`` is replaced by the expression's value, with its type
(an int stays an int, so arguments validate as if written literally); a string with
``${...}`` inside other text (``"block${i + 1}"``) interpolates each value as text. ``$${``
writes a literal ``${``.

The language is parsed here by a small recursive-descent parser -- never by ``eval`` -- and
is *total*: no loops, no recursion, no user functions, no attribute access. It has

* literals: integers, floats, ``'strings'``/``"strings"``, ``true``/``false``/``null``, lists ``[1, 2]``;
* names: the parameters in scope (block parameters, model parameters, the repeat index ``i``,
  ``variant``);
* ``+ - * / // % **``, unary ``-``, comparisons ``== != < <= > >=``, ``and or not``,
  ``a if cond else b``, indexing ``widths[i]`` (negative indices count from the end);
* functions ``min max abs len int float round str``;
* ``omit``: as the whole value of a mapping key (``strides: ${strides if strides != 1 else omit}``), the
  key is left out, as if not written (Ansible's ``omit``) -- so an argument at its default is not spelled out.

Bounds (each breach is an :class:`ExprError`, reported located by the caller): an expression
has at most :data:`MAX_LENGTH` characters and nests at most :data:`MAX_DEPTH` deep; an integer
result is at most :data:`MAX_INT` in magnitude, a float is finite and at most :data:`MAX_FLOAT`,
a string at most :data:`MAX_STRING` characters; ``**`` takes exponents up to 64. So each
evaluation costs time and memory bounded by the expression's length.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

MAX_LENGTH = 1_000
"""Characters in one expression."""
MAX_DEPTH = 32
"""Nesting of parentheses, brackets, operators and calls."""
MAX_INT = 2 ** 53
"""Largest magnitude of an integer value (exactly representable as a float, far above any layer size)."""
MAX_FLOAT = 1e300
MAX_STRING = 1_000
MAX_LIST = 10_000
MAX_EXPONENT = 64

_WHOLE = re.compile(r"^\$\{(.*)\}$", re.S)


class ExprError(Exception):
    """A malformed expression or one whose evaluation fails; ``column`` is 0-based in the expression."""

    def __init__(self, message: str, column: int | None = None, hint: str | None = None, code: str = "bad-expression"):
        super().__init__(message)
        self.message = message
        self.column = column
        self.hint = hint
        self.code = code


# ---------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?)
  | (?P<string>'[^'\\]*'|"[^"\\]*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|//|==|!=|<=|>=|[-+*/%<>()\[\],])
""", re.X)

_KEYWORDS = {"and", "or", "not", "if", "else", "true", "false", "null", "True", "False", "None", "omit"}


class _Omit:
    def __repr__(self) -> str:
        return "omit"


OMIT = _Omit()
"""The value of ``omit``: the mapping key holding it is left out."""


@dataclass(frozen=True)
class _Tok:
    kind: str  # number, string, name, op, kw, end
    text: str
    col: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExprError(f"unexpected character {text[pos]!r} in expression", pos,
                            "expressions use names, numbers, 'strings', + - * / // % **, comparisons, "
                            "and/or/not, 'a if c else b', [index] and min/max/len/...")
        kind = match.lastgroup or ""
        if kind != "space":
            value = match.group()
            if kind == "name" and value in _KEYWORDS:
                kind = "kw"
            out.append(_Tok(kind, value, pos))
        pos = match.end()
    out.append(_Tok("end", "", len(text)))
    return out


# ---------------------------------------------------------------------------------------------
# Syntax tree: tuples, evaluated by one function
# ---------------------------------------------------------------------------------------------
# ("const", value) ("name", str) ("unary", op, a) ("bin", op, a, b) ("cmp", op, a, b) ("and", a, b)
# ("or", a, b) ("not", a) ("if", cond, a, b) ("index", a, i) ("call", fname, [args]) ("list", [items])
# each node also carries its column as its last element.

FUNCTIONS = ("min", "max", "abs", "len", "int", "float", "round", "str")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.pos = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def expect(self, text: str) -> _Tok:
        tok = self.peek()
        if tok.text != text or tok.kind not in ("op", "kw"):
            raise ExprError(f"expected '{text}'" + (f", found '{tok.text}'" if tok.text else " before the end"),
                            tok.col)
        return self.take()

    def deeper(self, col: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExprError(f"expression nests deeper than {MAX_DEPTH}", col, code="expression-too-large")

    def parse(self) -> tuple:
        if not self.text.strip():
            raise ExprError("empty expression", 0, "write a value between the braces, e.g. ${filters * 4}")
        node = self.ternary()
        tok = self.peek()
        if tok.kind != "end":
            raise ExprError(f"unexpected '{tok.text}'", tok.col)
        return node

    def ternary(self) -> tuple:
        col = self.peek().col
        self.deeper(col)
        node = self.or_()
        if self.peek().kind == "kw" and self.peek().text == "if":
            self.take()
            cond = self.or_()
            self.expect("else")
            other = self.ternary()
            node = ("if", cond, node, other, col)
        self.depth -= 1
        return node

    def or_(self) -> tuple:
        node = self.and_()
        while self.peek().kind == "kw" and self.peek().text == "or":
            col = self.take().col
            node = ("or", node, self.and_(), col)
        return node

    def and_(self) -> tuple:
        node = self.not_()
        while self.peek().kind == "kw" and self.peek().text == "and":
            col = self.take().col
            node = ("and", node, self.not_(), col)
        return node

    def not_(self) -> tuple:
        if self.peek().kind == "kw" and self.peek().text == "not":
            col = self.take().col
            self.deeper(col)
            node = ("not", self.not_(), col)
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> tuple:
        node = self.additive()
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            node = ("cmp", tok.text, node, self.additive(), tok.col)
            nxt = self.peek()
            if nxt.kind == "op" and nxt.text in ("==", "!=", "<", "<=", ">", ">="):
                raise ExprError("comparisons do not chain", nxt.col, "write 'a < b and b < c'")
        return node

    def additive(self) -> tuple:
        node = self.term()
        while self.peek().kind == "op" and self.peek().text in ("+", "-"):
            tok = self.take()
            node = ("bin", tok.text, node, self.term(), tok.col)
        return node

    def term(self) -> tuple:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in ("*", "/", "//", "%"):
            tok = self.take()
            node = ("bin", tok.text, node, self.unary(), tok.col)
        return node

    def unary(self) -> tuple:
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("-", "+"):
            self.take()
            self.deeper(tok.col)
            node = ("unary", tok.text, self.unary(), tok.col)
            self.depth -= 1
            return node
        return self.power()

    def power(self) -> tuple:
        node = self.postfix()
        tok = self.peek()
        if tok.kind == "op" and tok.text == "**":
            self.take()
            self.deeper(tok.col)
            node = ("bin", "**", node, self.unary(), tok.col)
            self.depth -= 1
        return node

    def postfix(self) -> tuple:
        node = self.atom()
        while self.peek().kind == "op" and self.peek().text == "[":
            col = self.take().col
            index = self.ternary()
            self.expect("]")
            node = ("index", node, index, col)
        return node

    def atom(self) -> tuple:
        tok = self.take()
        if tok.kind == "number":
            if any(c in tok.text for c in ".eE"):
                value: Any = float(tok.text)
            else:
                if len(tok.text) > 16:
                    raise ExprError(f"number {tok.text[:20]}... is too large", tok.col, code="expression-overflow")
                value = int(tok.text)
            return ("const", _bounded(value, tok.col), tok.col)
        if tok.kind == "string":
            return ("const", _bounded(tok.text[1:-1], tok.col), tok.col)
        if tok.kind == "kw" and tok.text in ("true", "True"):
            return ("const", True, tok.col)
        if tok.kind == "kw" and tok.text in ("false", "False"):
            return ("const", False, tok.col)
        if tok.kind == "kw" and tok.text in ("null", "None"):
            return ("const", None, tok.col)
        if tok.kind == "kw" and tok.text == "omit":
            return ("const", OMIT, tok.col)
        if tok.kind == "name":
            if self.peek().kind == "op" and self.peek().text == "(":
                if tok.text not in FUNCTIONS:
                    from graphspec.errors import did_you_mean

                    raise ExprError(f"unknown function '{tok.text}'", tok.col,
                                    did_you_mean(tok.text, FUNCTIONS) or f"functions: {', '.join(FUNCTIONS)}")
                self.take()
                self.deeper(tok.col)
                args = self.items(")")
                self.depth -= 1
                return ("call", tok.text, args, tok.col)
            return ("name", tok.text, tok.col)
        if tok.kind == "op" and tok.text == "(":
            node = self.ternary()
            self.expect(")")
            return node
        if tok.kind == "op" and tok.text == "[":
            self.deeper(tok.col)
            items = self.items("]")
            self.depth -= 1
            return ("list", items, tok.col)
        if tok.kind == "end":
            raise ExprError("the expression ends too early", tok.col)
        raise ExprError(f"unexpected '{tok.text}'", tok.col)

    def items(self, close: str) -> list[tuple]:
        items: list[tuple] = []
        if self.peek().kind == "op" and self.peek().text == close:
            self.take()
            return items
        while True:
            items.append(self.ternary())
            if len(items) > MAX_LIST:
                raise ExprError(f"more than {MAX_LIST} items", self.peek().col, code="expression-too-large")
            tok = self.take()
            if tok.kind == "op" and tok.text == close:
                return items
            if not (tok.kind == "op" and tok.text == ","):
                raise ExprError(f"expected ',' or '{close}'" + (f", found '{tok.text}'" if tok.text else ""), tok.col)


_CACHE: dict[str, tuple] = {}


def parse(text: str) -> tuple:
    """The syntax tree of an expression (cached: one parse per distinct text)."""
    tree = _CACHE.get(text)
    if tree is None:
        if len(text) > MAX_LENGTH:
            raise ExprError(f"expression of {len(text):,} characters (at most {MAX_LENGTH:,})", 0,
                            code="expression-too-large")
        tree = _Parser(text).parse()
        if len(_CACHE) > 10_000:
            _CACHE.clear()
        _CACHE[text] = tree
    return tree


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    if value is OMIT:
        return "omit"
    return {int: "int", float: "float", str: "string", list: "list", dict: "mapping"}.get(type(value), "value")


def _bounded(value: Any, col: int) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise ExprError(f"integer result beyond 2**53 (|x| <= {MAX_INT:,})", col, code="expression-overflow")
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_FLOAT:
            raise ExprError("float result is not finite or beyond 1e300", col, code="expression-overflow")
    elif isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ExprError(f"string result longer than {MAX_STRING:,} characters", col, code="expression-overflow")
    elif isinstance(value, list):
        if len(value) > MAX_LIST:
            raise ExprError(f"list result longer than {MAX_LIST:,} items", col, code="expression-overflow")
    return value


def _number(value: Any, col: int, what: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExprError(f"{what} needs numbers, got {_type_name(value)} {_short(value)}", col, code="expression-type")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _truth(value: Any, col: int) -> bool:
    if not isinstance(value, bool):
        raise ExprError(f"a condition must be true or false, got {_type_name(value)} {_short(value)}", col,
                        "compare explicitly, e.g. 'strides != 1'", code="expression-type")
    return value


def _arith(op: str, a: Any, b: Any, col: int) -> Any:
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        return _bounded(a + b, col)
    a = _number(a, col, f"'{op}'")
    b = _number(b, col, f"'{op}'")
    if op == "+":
        result = a + b
    elif op == "-":
        result = a - b
    elif op == "*":
        result = a * b
    elif op in ("/", "//", "%"):
        if b == 0:
            raise ExprError("division by zero", col, code="expression-value")
        result = a / b if op == "/" else (a // b if op == "//" else a % b)
    else:  # '**'
        if isinstance(b, int) and abs(b) > MAX_EXPONENT and abs(a) > 1:
            raise ExprError(f"exponent {b} is too large (at most {MAX_EXPONENT})", col, code="expression-overflow")
        if a == 0 and b < 0:
            raise ExprError("zero to a negative power", col, code="expression-value")
        if isinstance(a, int) and isinstance(b, int) and b >= 0:
            if a not in (0, 1, -1) and b * math.log2(abs(a)) > 54:
                raise ExprError("integer result beyond 2**53", col, code="expression-overflow")
            result = a ** b
        else:
            try:
                if a < 0 and not float(b).is_integer():
                    raise ExprError("a negative number to a fractional power", col, code="expression-value")
                result = float(a) ** float(b)
            except OverflowError:
                raise ExprError("float result beyond 1e300", col, code="expression-overflow") from None
    if isinstance(result, float) and isinstance(a, int) and isinstance(b, int) and op != "/":
        result = int(result)
    return _bounded(result, col)


def _compare(op: str, a: Any, b: Any, col: int) -> bool:
    if a is OMIT or b is OMIT:
        raise ExprError("omit cannot be compared", col, code="expression-type")
    if op in ("==", "!="):
        same = type(a) is type(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                      and not isinstance(a, bool) and not isinstance(b, bool))
        equal = same and a == b
        return equal if op == "==" else not equal
    if isinstance(a, str) and isinstance(b, str):
        pass
    else:
        a = _number(a, col, f"'{op}'")
        b = _number(b, col, f"'{op}'")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _call(name: str, args: list, col: int) -> Any:
    if name in ("min", "max"):
        values = args[0] if len(args) == 1 and isinstance(args[0], list) else args
        if not values:
            raise ExprError(f"{name}() of nothing", col, code="expression-value")
        numbers = [_number(v, col, f"{name}()") for v in values]
        return min(numbers) if name == "min" else max(numbers)
    if len(args) != 1 and not (name == "round" and len(args) == 2):
        raise ExprError(f"{name}() takes 1 argument, got {len(args)}", col, code="expression-type")
    value = args[0]
    if name == "len":
        if not isinstance(value, (list, str)):
            raise ExprError(f"len() needs a list or a string, got {_type_name(value)}", col, code="expression-type")
        return len(value)
    if name == "str":
        if isinstance(value, (list, dict)):
            raise ExprError("str() needs a scalar", col, code="expression-type")
        return _bounded(_text(value), col)
    if name == "abs":
        return abs(_number(value, col, "abs()"))
    if name == "int":
        return _bounded(int(_number(value, col, "int()")), col)
    if name == "float":
        return float(_number(value, col, "float()"))
    digits = 0 if len(args) == 1 else args[1]
    if isinstance(digits, bool) or not isinstance(digits, int) or not -20 <= digits <= 20:
        raise ExprError("round()'s digits must be an int from -20 to 20", col, code="expression-type")
    result = round(_number(value, col, "round()"), digits if len(args) == 2 else None)
    return _bounded(result, col)


def evaluate(tree: tuple, scope: Mapping[str, Any], lookup_hint: Callable[[str], str | None] | None = None) -> Any:
    """The value of a parsed expression; names come from ``scope``."""
    kind = tree[0]
    col = tree[-1]
    if kind == "const":
        return tree[1]
    if kind == "name":
        if tree[1] not in scope:
            hint = lookup_hint(tree[1]) if lookup_hint else None
            raise ExprError(f"unknown name '{tree[1]}' in expression", col, hint, code="unknown-parameter")
        return scope[tree[1]]
    if kind == "list":
        items = [evaluate(item, scope, lookup_hint) for item in tree[1]]
        if any(item is OMIT for item in items):
            raise ExprError("omit leaves out a mapping key; it cannot be an item of a list", col,
                            code="expression-type")
        return items
    if kind == "unary":
        value = _number(evaluate(tree[2], scope, lookup_hint), col, f"unary '{tree[1]}'")
        return -value if tree[1] == "-" else value
    if kind == "bin":
        return _arith(tree[1], evaluate(tree[2], scope, lookup_hint), evaluate(tree[3], scope, lookup_hint), col)
    if kind == "cmp":
        return _compare(tree[1], evaluate(tree[2], scope, lookup_hint), evaluate(tree[3], scope, lookup_hint), col)
    if kind == "and":
        return _truth(evaluate(tree[1], scope, lookup_hint), col) and \
            _truth(evaluate(tree[2], scope, lookup_hint), col)
    if kind == "or":
        return _truth(evaluate(tree[1], scope, lookup_hint), col) or \
            _truth(evaluate(tree[2], scope, lookup_hint), col)
    if kind == "not":
        return not _truth(evaluate(tree[1], scope, lookup_hint), col)
    if kind == "if":
        cond = _truth(evaluate(tree[1], scope, lookup_hint), col)
        return evaluate(tree[2] if cond else tree[3], scope, lookup_hint)
    if kind == "index":
        container = evaluate(tree[1], scope, lookup_hint)
        index = evaluate(tree[2], scope, lookup_hint)
        if not isinstance(container, (list, str)):
            raise ExprError(f"only lists and strings can be indexed, not {_type_name(container)}", col,
                            code="expression-type")
        if isinstance(index, bool) or not isinstance(index, int):
            raise ExprError(f"an index must be an int, got {_type_name(index)}", col, code="expression-type")
        if not -len(container) <= index < len(container):
            raise ExprError(f"index {index} is out of range for a {_type_name(container)} of {len(container)}",
                            col, code="expression-value")
        return container[index]
    if kind == "call":
        return _call(tree[1], [evaluate(a, scope, lookup_hint) for a in tree[2]], col)
    raise AssertionError(kind)  # pragma: no cover


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def has_expression(text: Any) -> bool:
    return isinstance(text, str) and "${" in text


def template_parts(text: str) -> list[tuple[str, int]] | None:
    """A string's pieces: ``(literal, -1)`` and ``(expression, column of its first character)``.

    None if the string holds no ``${``. Raises :class:`ExprError` for an unclosed ``${``.
    """
    if "${" not in text:
        return None
    parts: list[tuple[str, int]] = []
    literal: list[str] = []
    pos = 0
    while pos < len(text):
        if text.startswith("$${", pos):
            literal.append("${")
            pos += 3
            continue
        if text.startswith("${", pos):
            depth = 0
            end = pos + 2
            quote = ""
            while end < len(text):
                ch = text[end]
                if quote:
                    if ch == quote:
                        quote = ""
                elif ch in "'\"":
                    quote = ch
                elif ch == "{":
                    depth += 1
                elif ch == "}":
                    if depth == 0:
                        break
                    depth -= 1
                end += 1
            if end >= len(text):
                raise ExprError("'${' is not closed by '}'", pos, "write ${expression}, or $${ for a literal '${'")
            if literal:
                parts.append(("".join(literal), -1))
                literal = []
            parts.append((text[pos + 2:end], pos + 2))
            pos = end + 1
            continue
        literal.append(text[pos])
        pos += 1
    if literal:
        parts.append(("".join(literal), -1))
    return parts


def substitute(text: str, scope: Mapping[str, Any], lookup_hint: Callable[[str], str | None] | None = None) -> Any:
    """The value of a string with ``${...}``: a whole expression keeps its type, pieces are joined as text.

    Raises :class:`ExprError` with ``column`` relative to the whole string.
    """
    parts = template_parts(text)
    if parts is None:
        return text
    values = []
    for piece, col in parts:
        if col < 0:
            values.append(piece)
            continue
        try:
            value = evaluate(parse(piece), scope, lookup_hint)
        except ExprError as error:
            error.column = col + (error.column or 0)
            raise
        if len(parts) == 1:
            return value
        if isinstance(value, (list, dict)) or value is OMIT:
            raise ExprError(f"a{'n' if value is OMIT else ''} {_type_name(value)} cannot be part of a text", col,
                            code="expression-type")
        values.append(_text(value))
    result = "".join(values)
    if len(result) > MAX_STRING:
        raise ExprError(f"text longer than {MAX_STRING:,} characters", 0, code="expression-overflow")
    return result
