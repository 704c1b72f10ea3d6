"""Deterministic answer extraction and normalisation, per answer type.

Every response maps to one discrete answer value; anything unparsable maps to ``NULL``, which is an
answer category like any other in the conditional answer distributions. The rules, in order, are
in ``extract_numeric`` and ``extract_option`` (and the README): the first ``####`` line wins, then
``\\boxed{}``, then the last "answer is" phrase, then (numbers) the last number or (options) a lone
letter on the last line. Numbers drop ``$`` and thousands separators and compare by value
(``18.0`` == ``18``); option keys ``1``-``5`` map to ``A``-``E``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

NULL = "NULL"
ANSWER_TYPES = ("numeric", "option")

# a number: optional sign (not a minus that follows a digit, as in "10-4"), optional currency,
# strict thousands groups or plain digits, optional decimals
_NUM = r"(?:(?<![\w)])-)?(?:\$\s*)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?:(?<![\w)])-)?\.\d+"
_NUM_RE = re.compile(_NUM)
_NUM_AT_START = re.compile(r"\s*(" + _NUM + ")")
FINAL_MARKER = _HASH = "####"  # the first-rule answer marker every siaflow prompt asks for
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_PHRASE = re.compile(r"(?:answer|option)\s*(?:is|:)\s*:?\s*", re.IGNORECASE)


def normalize_number(raw: str) -> str:
    """Canonical text of a number (``"$1,234.50"`` -> ``"1234.5"``), or ``NULL``."""
    s = raw.strip().replace("$", "").replace(",", "").replace(" ", "")
    s = s.rstrip(".")
    try:
        d = Decimal(s)
    except InvalidOperation:
        return NULL
    if not d.is_finite():
        return NULL
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def _number_at_start(text: str) -> str:
    m = _NUM_AT_START.match(text)
    return normalize_number(m.group(1)) if m else NULL


def extract_numeric(text: str, *, last_number_fallback: bool = True) -> str:
    """Rules, in order: (1) the number right after the *first* ``####`` (what follows it is a
    base model continuing its few-shot pattern); (2) the last ``\\boxed{}``; (3) the last
    "answer is / answer:" phrase followed by a number; (4) the last number in the text, if the
    dataset allows it. A marker without a number gives NULL, not a fallback."""
    if _HASH in text:
        return _number_at_start(text.split(_HASH, 1)[1])
    boxed = _BOXED.findall(text)
    if boxed:
        inner = boxed[-1].strip()
        m = re.fullmatch(_NUM, inner)
        return normalize_number(inner) if m else NULL
    for m in reversed(list(_PHRASE.finditer(text))):
        value = _number_at_start(text[m.end():])
        if value != NULL:
            return value
    if last_number_fallback:
        nums = _NUM_RE.findall(text)
        if nums:
            return normalize_number(nums[-1])
    return NULL


_OPTION_AFTER_HASH = r"\s*\(?([A-Ea-e1-5])\)?(?![\w])"  # lower case accepted after ####
_LETTER = r"\(?([A-E1-5])\)?(?![\w])|\(([a-e])\)|([a-e])(?=[.)]?\s*$)"


def normalize_option(raw: str) -> str:
    s = raw.strip().strip("().").upper()
    if s in {"1", "2", "3", "4", "5"}:
        return "ABCDE"[int(s) - 1]
    return s if s in {"A", "B", "C", "D", "E"} else NULL


def _letter_at_start(text: str) -> str:
    m = re.match(r"\s*(?:" + _LETTER + ")", text, re.MULTILINE)
    if not m:
        return NULL
    return normalize_option(next(g for g in m.groups() if g))


def extract_option(text: str) -> str:
    """Rules, in order: (1) the letter right after the first ``####`` (numeric keys 1-5 map to
    A-E; lower case accepted there); (2) the last ``\\boxed{X}``; (3) the last "answer is /
    answer: / option is" phrase followed by a letter (a lower-case letter only in parentheses or at
    the end of the line, so "the answer is a bit..." is not A); (4) a lone letter on the last
    line ("B", "(B)", "B.", "B)"). Letters elsewhere in prose are not answers: NULL."""
    if _HASH in text:
        m = re.match(_OPTION_AFTER_HASH, text.split(_HASH, 1)[1])
        return normalize_option(m.group(1)) if m else NULL
    boxed = _BOXED.findall(text)
    if boxed:
        return normalize_option(boxed[-1])
    for m in reversed(list(_PHRASE.finditer(text))):
        value = _letter_at_start(text[m.end():])
        if value != NULL:
            return value
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        m = re.fullmatch(r"\s*\(?([A-E])\)?[.)]?\s*", lines[-1])
        if m:
            return m.group(1)
    return NULL


def answer_is_final(text: str, answer_type: str) -> bool:
    """True when no continuation of ``text`` can change its extracted answer, so generation can stop.

    Only the first rule can settle early: once the first ``####`` is followed by a complete answer
    (a number followed by a character that cannot extend it, or an option letter followed by a
    non-word character), or by text that can never start one (the answer is then NULL), what
    comes after is never read. Answers found by the later rules (boxed, "answer is", last number)
    can be overridden by later text, so such text is never final before the response ends.
    """
    if _HASH not in text:
        return False
    rest = text.split(_HASH, 1)[1]
    if answer_type == "numeric":
        m = _NUM_AT_START.match(rest)
        if m:  # nothing but digits, commas and points can extend a number
            return any(c not in "0123456789,." for c in rest[m.end():])
        return _NUM_AT_START.match(rest + "1") is None  # not even a digit would make one
    if answer_type == "option":
        m = re.match(_OPTION_AFTER_HASH, rest)
        if m:  # the character after the letter has been seen (and is not a word character)
            return len(rest) > m.end(1)
        return re.match(_OPTION_AFTER_HASH, rest + "A ") is None
    raise ValueError(f"unknown answer_type {answer_type!r}; choose one of {ANSWER_TYPES}")


def extract_answer(text: str, answer_type: str, *, last_number_fallback: bool = True) -> str:
    if answer_type == "numeric":
        return extract_numeric(text, last_number_fallback=last_number_fallback)
    if answer_type == "option":
        return extract_option(text)
    raise ValueError(f"unknown answer_type {answer_type!r}; choose one of {ANSWER_TYPES}")


def normalize_gold(gold: str, answer_type: str) -> str:
    """Normalise a gold answer with the same rule as model answers; unparsable gold is an error
    the caller must report (a NULL gold would silently count NULL answers as correct)."""
    return normalize_number(gold) if answer_type == "numeric" else normalize_option(gold)
