"""Decoding a safetensors header's JSON the way the reference's parser does: a repeated key
keeps its last value (the earlier ones are kept aside, for the reference still parses them),
NaN and Infinity are refused, "-0" is not an integer, a lone UTF-16 surrogate is refused."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["decode_header"]


class _RepeatedKeys(dict):  # type: ignore[type-arg]
    """A JSON object that repeats keys: the last value is kept, as the reference's maps do;
    ``shadowed`` holds the earlier ones, which the reference still parses (and may refuse)."""

    shadowed: tuple[tuple[str, Any], ...] = ()

    @property
    def repeated(self) -> frozenset[str]:
        return frozenset(key for key, _ in self.shadowed)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    last = {key: index for index, (key, _) in enumerate(pairs)}
    marked = _RepeatedKeys(result)
    marked.shadowed = tuple(pair for index, pair in enumerate(pairs) if last[pair[0]] != index)
    return marked


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _int_not_negative_zero(text: str) -> int | float:
    # "-0" is a float to the reference's parser (so not an offset or a dimension); json makes 0.
    return -0.0 if text == "-0" else int(text)


#: a \\u escape of a UTF-16 surrogate: only then can json produce a lone surrogate
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(value: Any) -> bool:
    """Whether a decoded JSON value holds a string with a lone surrogate (which the reference's
    parser refuses: such a string is not Unicode)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


#: Each key of a JSON text ends in '":' unless space precedes the ':' (a string may hold more
#: '":'): without such space, the text holds at least as many '":' as it has keys.
_SPACE_BEFORE_COLON = re.compile(r'"\s+:')


def _keys_at_two_levels(document: Any) -> int:
    """The keys of a decoded header and of the objects it maps them to (no deeper ones)."""
    if type(document) is not dict:
        return -1
    return len(document) + sum(len(v) for v in document.values() if type(v) is dict)


def decode_header(raw: bytes) -> dict[str, Any]:
    """The JSON object of a header, decoded by the reference's rules; ValueError says what
    is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"the header is not UTF-8 ({error})") from None
    parse_int = _int_not_negative_zero if "-0" in text else None
    try:
        document = None
        if not _SPACE_BEFORE_COLON.search(text):
            # json's own dicts are built in C (100,000 tensors: 0.1 s sooner), but keep the
            # last of a repeated key silently: the keys they hold must be all the text has
            document = json.loads(text, parse_constant=_reject_constant, parse_int=parse_int)
            if _keys_at_two_levels(document) != text.count('":'):
                document = None  # a repeated key, or deeper objects: decode again as below
        if document is None:
            document = json.loads(
                text,
                object_pairs_hook=_object,
                parse_constant=_reject_constant,
                parse_int=parse_int,
            )
    except (ValueError, RecursionError) as error:
        raise ValueError(f"the header is not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise ValueError(f"the header is a JSON {type(document).__name__}, not an object")
    if _SURROGATE_ESCAPE.search(text) and _lone_surrogate(document):
        raise ValueError("the header is not valid JSON (a string holds a lone UTF-16 surrogate)")
    if "__metadata__" in getattr(document, "repeated", ()):
        raise ValueError("__metadata__ appears more than once")
    return document
