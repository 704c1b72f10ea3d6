"""Deterministic answer extraction and normalisation, per answer type.

Every response maps to one discrete answer value; anything unparsable maps to ``NULL``, which is an
answer category like any other in the conditional answer distributions.

* ``numeric`` (toy world, GSM8K, SVAMP): the number after the *last* explicit answer marker
  (``####``, ``answer is``, ``\\boxed{}``); without a marker, the last number in the text if the
  dataset allows that fallback. ``$`` and thousands separators are stripped, a trailing ``.`` is
  dropped, and numbers compare by value (``18.0`` == ``18``, ``-3`` stays negative).
* ``option`` (ARC): a letter ``A``-``E`` after an answer marker or in forms like ``(B)``/``B)``;
  numeric keys ``1``-``5`` map to ``A``-``E``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

NULL = "NULL"
ANSWER_TYPES = ("numeric", "option")

_NUM = r"-?\$?\s*-?\d[\d,]*(?:\.\d+)?|-?\$?\s*-?\.\d+"
_NUM_RE = re.compile(_NUM)
_MARKERS = [
    re.compile(r"####\s*(" + _NUM + r")"),
    re.compile(r"\\boxed\{\s*(" + _NUM + r")\s*\}"),
    re.compile(r"answer\s*(?:is|:)\s*[:=]?\s*(" + _NUM + r")", re.IGNORECASE),
]


def normalize_number(raw: str) -> str:
    """Canonical text of a number (``"$1,234.50"`` -> ``"1234.5"``), or ``NULL``."""
    s = raw.strip().replace("$", "").replace(",", "").replace(" ", "")
    s = s.rstrip(".")
    if s.startswith("--"):
        s = s[2:]
    try:
        d = Decimal(s)
    except InvalidOperation:
        return NULL
    if not d.is_finite():
        return NULL
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def extract_numeric(text: str, *, last_number_fallback: bool = True) -> str:
    best = None
    for pattern in _MARKERS:
        for m in pattern.finditer(text):
            if best is None or m.start() > best.start():
                best = m
    if best is not None:
        return normalize_number(best.group(1))
    if last_number_fallback:
        nums = _NUM_RE.findall(text)
        if nums:
            return normalize_number(nums[-1])
    return NULL


_LETTER_MARKERS = [
    re.compile(r"answer\s*(?:is|:)\s*[:=]?\s*\(?([A-Ea-e1-5])\b\)?", re.IGNORECASE),
    re.compile(r"####\s*\(?([A-Ea-e1-5])\b"),
    re.compile(r"\(([A-E1-5])\)"),
    re.compile(r"(?:^|\s)([A-E1-5])\)"),
]


def normalize_option(raw: str) -> str:
    s = raw.strip().strip("().").upper()
    if s in {"1", "2", "3", "4", "5"}:
        return "ABCDE"[int(s) - 1]
    return s if s in {"A", "B", "C", "D", "E"} else NULL


def extract_option(text: str) -> str:
    for pattern in _LETTER_MARKERS:  # markers in order of strength; the last occurrence wins
        hits = list(pattern.finditer(text))
        if hits:
            return normalize_option(hits[-1].group(1))
    return NULL


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
