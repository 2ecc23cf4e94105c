"""A schema-less reader of protobuf text format, for the server's config files.

TensorFlow Serving's batching and platform config files are text-format
protos whose messages (`BatchingParameters`, `SavedModelBundleV2SourceAdapterConfig`,
DeepRec's `model_session_config`) are not shipped in `tensorflow-serving-api`,
and DeepRec adds fields (`model_id`) to `ModelConfig`. So these files are read
into plain dicts, `{field: [value, ...]}` (every field a list, in file order;
messages are dicts), and each reader checks the fields it knows.

Example:
  >>> msg = parse('max_batch_size { value: 8 } allowed: [1, 2] name: "a" "b"')
  >>> msg["max_batch_size"][0]["value"], msg["allowed"], msg["name"]
  ([8], [1, 2], ['ab'])
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import text_encoding

__all__ = ["Ident", "TextProtoError", "one", "parse", "to_text"]

Message = dict[str, list[Any]]


class Ident(str):
    """An unquoted identifier value (an enum name), written back without quotes."""

_TOKEN = re.compile(r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?[fF]?|-?inf|-?nan)
  | (?P<ident>[A-Za-z_][\w.]*)
  | (?P<extension>\[[\w./\s]+\](?=\s*[:{<]))
  | (?P<punct>[:{}<>\[\],;])
""", re.VERBOSE)


class TextProtoError(ValueError):
    """A config file is not valid text format, or has a field the reader rejects."""


def _tokens(text: str, source: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            line = text.count("\n", 0, pos) + 1
            raise TextProtoError(f"{source}:{line}: cannot parse text near {text[pos:pos + 20]!r}")
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group(), text.count("\n", 0, pos) + 1))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.tokens = _tokens(text, source)
        self.pos = 0

    def fail(self, message: str):
        line = self.tokens[min(self.pos, len(self.tokens) - 1)][2] if self.tokens else 1
        raise TextProtoError(f"{self.source}:{line}: {message}")

    def peek(self) -> tuple[str, str] | None:
        if self.pos < len(self.tokens):
            return self.tokens[self.pos][:2]
        return None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            self.fail("unexpected end of file")
        if value is not None and token[1] != value:
            self.fail(f"expected {value!r}, found {token[1]!r}")
        self.pos += 1
        return token

    def message(self, close: str | None) -> Message:
        fields: Message = {}
        while True:
            token = self.peek()
            if token is None:
                if close is not None:
                    self.fail(f"missing {close!r}")
                return fields
            if token[1] == close:
                self.pos += 1
                return fields
            kind, name = self.take()
            if kind == "extension":
                name = re.sub(r"\s+", "", name)
            elif kind != "ident":
                self.fail(f"expected a field name, found {name!r}")
            has_colon = self.peek() is not None and self.peek()[1] == ":"
            if has_colon:
                self.pos += 1
            fields.setdefault(name, []).extend(self.values(name, has_colon))
            if self.peek() is not None and self.peek()[1] in (",", ";"):
                self.pos += 1

    def values(self, name: str, has_colon: bool) -> list[Any]:
        token = self.peek()
        if token is None:
            self.fail(f"field {name!r} has no value")
        if token[1] == "[":
            self.pos += 1
            items = []
            while self.peek() is not None and self.peek()[1] != "]":
                items.append(self.value(name, has_colon))
                if self.peek() is not None and self.peek()[1] == ",":
                    self.pos += 1
            self.take("]")
            return items
        return [self.value(name, has_colon)]

    def value(self, name: str, has_colon: bool) -> Any:
        kind, text = self.take()
        if text in ("{", "<"):
            return self.message("}" if text == "{" else ">")
        if not has_colon:
            self.fail(f"field {name!r} needs ':' before a scalar value")
        if kind == "string":
            parts = [text]
            while self.peek() is not None and self.peek()[0] == "string":
                parts.append(self.take()[1])
            raw = b"".join(text_encoding.CUnescape(p[1:-1]) for p in parts)
            return raw.decode("utf-8")
        if kind == "number":
            number = text.rstrip("fF") if not text.lower().endswith("inf") else text
            try:
                return int(number)
            except ValueError:
                return float(number)
        if kind == "ident":
            return {"true": True, "True": True, "t": True,
                    "false": False, "False": False, "f": False}.get(text, Ident(text))
        self.fail(f"field {name!r} has no value (found {text!r})")


def parse(text: str, source: str = "<text>") -> Message:
    """Parses text-format protobuf `text` into `{field: [values]}`.

    Args:
      text: the file's contents.
      source: the file name, for error messages.

    Returns:
      The top-level message. Scalars are `int`, `float`, `bool`, `str`
      (strings and enum names); sub-messages are dicts of the same form.

    Raises:
      TextProtoError: `text` is not text format; the message names the line.
    """
    return _Parser(text, source).message(None)


def one(message: Message, field: str, default: Any = None, where: str = "") -> Any:
    """The single value of `field` in `message`, or `default` if absent.

    Raises:
      TextProtoError: the field is given more than once.
    """
    values = message.get(field, [])
    if len(values) > 1:
        raise TextProtoError(f"{where}field {field!r} is given {len(values)} times; expected once")
    return values[0] if values else default


def to_text(message: Message) -> str:
    """Writes a parsed message back as text format (for `text_format.Parse` into a real proto).

    Example:
      >>> to_text({"a": [1, True], "b": [{"c": ["x"]}]})
      'a: 1 a: true b { c: "x" }'
    """
    parts = []
    for name, values in message.items():
        for value in values:
            if isinstance(value, dict):
                parts.append(f"{name} {{ {to_text(value)} }}".replace("{  }", "{ }"))
            elif isinstance(value, (bool, Ident)):
                parts.append(f"{name}: {str(value).lower() if isinstance(value, bool) else value}")
            elif isinstance(value, str):
                escaped = text_encoding.CEscape(value.encode("utf-8"), as_utf8=True)
                parts.append(f'{name}: "{escaped}"')
            else:
                parts.append(f"{name}: {value}")
    return " ".join(parts)
