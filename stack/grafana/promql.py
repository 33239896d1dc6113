"""A small PromQL parser: enough structure to name the metrics a query reads and to spot ratio mistakes.

Prometheus itself decides whether a query is valid (the live check sends every query to it); this parser only
has to understand valid queries well enough to find selectors, aggregations and binary operators. Grafana
variables must be substituted before parsing (see `stack.grafana.variables`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator, Union

AGGREGATIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
})
# Functions whose result for one series is a per-second or per-window change of that one series.
RATE_FUNCTIONS = frozenset({"rate", "irate", "increase", "delta", "idelta"})
BINARY_PRECEDENCE = {
    "or": 1,
    "and": 2, "unless": 2,
    "==": 3, "!=": 3, "<=": 3, "<": 3, ">=": 3, ">": 3,
    "+": 4, "-": 4,
    "*": 5, "/": 5, "%": 5, "atan2": 5,
    "^": 6,
}
RIGHT_ASSOCIATIVE = {"^"}
COMPARISONS = {"==", "!=", "<=", "<", ">=", ">"}


class PromQLSyntaxError(ValueError):
    pass


# ---------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class String:
    value: str


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    name: str | None
    matchers: tuple[Matcher, ...] = ()
    range: str | None = None

    @property
    def metric(self) -> str | None:
        """The metric name, from `name{...}` or from a `__name__="..."` matcher."""
        if self.name:
            return self.name
        for m in self.matchers:
            if m.label == "__name__" and m.op == "=":
                return m.value
        return None


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple["Node", ...]


@dataclass(frozen=True)
class Aggregate:
    op: str
    args: tuple["Node", ...]
    grouping: tuple[str, tuple[str, ...]] | None = None  # ("by" | "without", labels)


@dataclass(frozen=True)
class Binary:
    op: str
    lhs: "Node"
    rhs: "Node"
    matching: tuple[str, tuple[str, ...]] | None = None  # ("on" | "ignoring", labels)
    group: str | None = None                              # "group_left" | "group_right"
    bool_modifier: bool = False


@dataclass(frozen=True)
class Unary:
    op: str
    expr: "Node"


@dataclass(frozen=True)
class Paren:
    expr: "Node"


@dataclass(frozen=True)
class Subquery:
    expr: "Node"
    range: str
    step: str | None = None


Node = Union[Number, String, Selector, Call, Aggregate, Binary, Unary, Paren, Subquery]


# ---------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class Token:
    kind: str   # number, string, ident, duration, op, punct, eof
    text: str
    pos: int


_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_TOKEN = re.compile(
    rf"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<duration>{_DURATION}(?![\w.]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[Ii]nf\b|NaN\b)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<ident>[a-zA-Z_][a-zA-Z0-9_:]*)
  | (?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>=@])
  | (?P<punct>[(){{}}\[\],:])
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise PromQLSyntaxError(f"unexpected character {text[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("eof", "", len(text)))
    return tokens


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # token helpers
    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.i += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token.kind in {"op", "punct", "ident"} and token.text in texts

    def expect(self, text: str) -> Token:
        token = self.next()
        if token.text != text:
            raise PromQLSyntaxError(f"expected {text!r} at position {token.pos}, found {token.text or 'end'!r}")
        return token

    # grammar
    def parse(self) -> Node:
        node = self.expression(0)
        if self.peek().kind != "eof":
            token = self.peek()
            raise PromQLSyntaxError(f"unexpected {token.text!r} at position {token.pos}")
        return node

    def binary_operator(self) -> str | None:
        token = self.peek()
        if token.kind == "op" and token.text in BINARY_PRECEDENCE:
            return token.text
        if token.kind == "ident" and token.text.lower() in {"and", "or", "unless", "atan2"}:
            return token.text.lower()
        return None

    def expression(self, min_precedence: int) -> Node:
        lhs = self.unary()
        while True:
            op = self.binary_operator()
            if op is None or BINARY_PRECEDENCE[op] < min_precedence:
                return lhs
            self.next()
            bool_modifier = False
            if op in COMPARISONS and self.at("bool"):
                self.next()
                bool_modifier = True
            matching = group = None
            if self.at("on", "ignoring"):
                kind = self.next().text
                matching = (kind, self.label_list())
                if self.at("group_left", "group_right"):
                    group = self.next().text
                    if self.at("("):
                        self.label_list()
            precedence = BINARY_PRECEDENCE[op]
            rhs = self.expression(precedence if op in RIGHT_ASSOCIATIVE else precedence + 1)
            lhs = Binary(op, lhs, rhs, matching, group, bool_modifier)

    def unary(self) -> Node:
        if self.peek().kind == "op" and self.peek().text in {"+", "-"}:
            op = self.next().text
            # Unary minus binds tighter than * but looser than ^ (as in Prometheus).
            return Unary(op, self.expression(BINARY_PRECEDENCE["^"]))
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.at("["):
                self.next()
                first = self.duration()
                if self.at(":"):
                    self.next()
                    step = None if self.at("]") else self.duration()
                    self.expect("]")
                    node = Subquery(node, first, step)
                else:
                    self.expect("]")
                    if not isinstance(node, Selector) or node.range is not None:
                        raise PromQLSyntaxError(f"a range [{first}] needs an instant vector selector before it")
                    node = Selector(node.name, node.matchers, first)
            elif self.at("offset"):
                self.next()
                if self.peek().kind == "op" and self.peek().text == "-":
                    self.next()
                self.duration()
            elif self.peek().kind == "op" and self.peek().text == "@":
                self.next()
                if self.at("start", "end"):
                    self.next()
                    self.expect("(")
                    self.expect(")")
                else:
                    token = self.next()
                    if token.kind != "number":
                        raise PromQLSyntaxError(f"expected a timestamp after @ at position {token.pos}")
            else:
                return node

    def duration(self) -> str:
        token = self.next()
        if token.kind not in {"duration", "number"}:
            raise PromQLSyntaxError(f"expected a duration at position {token.pos}, found {token.text or 'end'!r}")
        return token.text

    def label_list(self) -> tuple[str, ...]:
        self.expect("(")
        labels: list[str] = []
        while not self.at(")"):
            token = self.next()
            if token.kind not in {"ident", "string"}:
                raise PromQLSyntaxError(f"expected a label name at position {token.pos}")
            labels.append(_unquote(token.text) if token.kind == "string" else token.text)
            if not self.at(")"):
                self.expect(",")
        self.expect(")")
        return tuple(labels)

    def args(self) -> tuple[Node, ...]:
        self.expect("(")
        items: list[Node] = []
        while not self.at(")"):
            items.append(self.expression(0))
            if not self.at(")"):
                self.expect(",")
        self.expect(")")
        return tuple(items)

    def primary(self) -> Node:
        token = self.peek()
        if token.kind == "number":
            self.next()
            text = token.text.lower()
            return Number(float(int(text, 16)) if text.startswith("0x") else float(text))
        if token.kind == "duration":
            # A bare duration is not an expression (it only appears inside [] and after offset).
            raise PromQLSyntaxError(f"unexpected duration {token.text!r} at position {token.pos}")
        if token.kind == "string":
            self.next()
            return String(_unquote(token.text))
        if self.at("("):
            self.next()
            inner = self.expression(0)
            self.expect(")")
            return Paren(inner)
        if self.at("{"):
            return Selector(None, self.matchers())
        if token.kind == "ident":
            self.next()
            name = token.text
            if name.lower() in AGGREGATIONS and (self.at("(") or self.at("by", "without")):
                grouping = None
                if self.at("by", "without"):
                    grouping = (self.next().text, self.label_list())
                arguments = self.args()
                if grouping is None and self.at("by", "without"):
                    grouping = (self.next().text, self.label_list())
                return Aggregate(name.lower(), arguments, grouping)
            if self.at("("):
                return Call(name, self.args())
            matchers = self.matchers() if self.at("{") else ()
            return Selector(name, matchers)
        raise PromQLSyntaxError(f"unexpected {token.text or 'end of query'!r} at position {token.pos}")

    def matchers(self) -> tuple[Matcher, ...]:
        self.expect("{")
        found: list[Matcher] = []
        while not self.at("}"):
            label = self.next()
            if label.kind not in {"ident", "string"}:
                raise PromQLSyntaxError(f"expected a label name at position {label.pos}")
            op = self.next()
            if op.text not in {"=", "!=", "=~", "!~"}:
                raise PromQLSyntaxError(f"expected =, !=, =~ or !~ at position {op.pos}")
            value = self.next()
            if value.kind != "string":
                raise PromQLSyntaxError(f"expected a quoted label value at position {value.pos}")
            name = _unquote(label.text) if label.kind == "string" else label.text
            found.append(Matcher(name, op.text, _unquote(value.text)))
            if not self.at("}"):
                self.expect(",")
        self.expect("}")
        return tuple(found)


def parse(text: str) -> Node:
    """The syntax tree of a PromQL expression (variables already substituted)."""
    return _Parser(text).parse()


# ---------------------------------------------------------------- questions asked of a tree


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, (Call, Aggregate)):
        return node.args
    if isinstance(node, Binary):
        return (node.lhs, node.rhs)
    if isinstance(node, (Unary, Paren, Subquery)):
        return (node.expr,)
    return ()


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in children(node):
        yield from walk(child)


def selectors(node: Node) -> list[Selector]:
    return [n for n in walk(node) if isinstance(n, Selector)]


def metric_names(text_or_node: str | Node) -> list[str]:
    """Metric names the expression reads, in order of appearance, without repeats."""
    node = parse(text_or_node) if isinstance(text_or_node, str) else text_or_node
    seen: dict[str, None] = {}
    for selector in selectors(node):
        if selector.metric:
            seen.setdefault(selector.metric, None)
    return list(seen)


def _strip(node: Node) -> Node:
    while isinstance(node, Paren):
        node = node.expr
    return node


def unaggregated_rate(node: Node) -> Call | None:
    """The rate()-like call this operand is, if it is one with no aggregation around it (`rate(x[5m])`,
    `(increase(x[1h]))`, `60 * rate(x[5m])`); None otherwise."""
    node = _strip(node)
    if isinstance(node, Call) and node.func in RATE_FUNCTIONS:
        return node
    if isinstance(node, Binary) and node.op in {"*", "/"}:
        lhs, rhs = _strip(node.lhs), _strip(node.rhs)
        if isinstance(lhs, Number):
            return unaggregated_rate(rhs)
        if isinstance(rhs, Number):
            return unaggregated_rate(lhs)
    return None


@dataclass(frozen=True)
class RatioFinding:
    numerator: str
    denominator: str
    same_metric: bool
    matching: tuple[str, tuple[str, ...]] | None = field(default=None)


def unaggregated_ratios(text_or_node: str | Node) -> list[RatioFinding]:
    """Every `a / b` where both sides are rate()-like calls with no sum/avg/... around them.

    `rate(x{status="error"}[5m]) / rate(x[5m])` divides each error series by the series with the very same
    labels (itself), so it is 1 wherever there are errors and nothing elsewhere, instead of errors over all
    requests: sum both sides `by` the labels to keep, then divide.
    """
    node = parse(text_or_node) if isinstance(text_or_node, str) else text_or_node
    found: list[RatioFinding] = []
    for item in walk(node):
        if isinstance(item, Binary) and item.op == "/":
            top, bottom = unaggregated_rate(item.lhs), unaggregated_rate(item.rhs)
            if top is None or bottom is None:
                continue
            top_names, bottom_names = metric_names(top), metric_names(bottom)
            found.append(RatioFinding(
                numerator=", ".join(top_names) or "?",
                denominator=", ".join(bottom_names) or "?",
                same_metric=bool(top_names) and top_names == bottom_names,
                matching=item.matching,
            ))
    return found
