"""The text under answer extraction (``siaflow.answers``): think sections, the markdown and LaTeX
markup removed before reading (keeping, on request, where each character came from), ``\\boxed{}``
contents, and the values numbers and option letters normalise to (``NULL`` where none)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

NULL = "NULL"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
UNICODE_MINUS = "\u2212"  # "−", the minus sign of typeset mathematics (and of terse answers)

# a number: optional sign (not a minus that follows a digit, as in "10-4"), optional currency,
# strict thousands groups or plain digits, optional decimals
_NUM = (
    r"(?:(?<![\w)])-)?(?:[$€£]\s*)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
    r"|(?:(?<![\w)])-)?(?:[$€£]\s*)?\.\d+"
)
NUMBER = re.compile(_NUM)
# a value at the start of a text: a number, or an arithmetic chain whose value follows the last "="
_OP = r"\s*(?:[-+*/×÷x]|=)\s*"
_QUOTE = r"[\"'“‘]?"
_VALUE_AT_START = re.compile(r"\s*" + _QUOTE + r"\s*(" + _NUM + r")((?:" + _OP + r"(?:" + _NUM + r"))*)")

# --------------------------------------------------------------------------------------------
# Markup: think sections, markdown emphasis, LaTeX wrappers
# --------------------------------------------------------------------------------------------


def think_spans(text: str) -> tuple[list[tuple[int, int]], int | None]:
    """Where ``text``'s think sections leave it: the (start, end) spans of the text outside
    ``<think>…</think>``, in order, and where the text of a think section left open at the end
    starts (None when none is open). A ``</think>`` with no open section is ordinary text."""
    spans, start, open_at = [], 0, None
    for m in re.finditer(f"{THINK_OPEN}|{THINK_CLOSE}", text):
        if m.group() == THINK_OPEN:
            if open_at is None:
                spans.append((start, m.start()))
            open_at = m.end()  # a <think> inside an open section restarts its text
        elif open_at is not None:
            open_at, start = None, m.end()
    if open_at is None:
        spans.append((start, len(text)))
    return [(a, b) for a, b in spans if b > a], open_at


def think_sections(text: str) -> tuple[str, str | None]:
    """(text outside ``<think>…</think>`` sections, the text of a think section left open at the
    end or None). A ``</think>`` with no open section is ordinary text."""
    spans, open_at = think_spans(text)
    return "".join(text[a:b] for a, b in spans), (None if open_at is None else text[open_at:])


def leaves_think_open(prompt: str) -> bool:
    """True when a prompt (a rendered chat template) ends inside an open ``<think>`` section, as
    DeepSeek-R1-style templates do: the response then starts in its think section."""
    return prompt.rfind(THINK_OPEN) > prompt.rfind(THINK_CLOSE)


_LATEX_WRAP = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\d?frac\s*\{\s*(-?\d+(?:\.\d+)?)\s*\}\s*\{\s*(\d+(?:\.\d+)?)\s*\}")
_LATEX_SUBS = [
    (re.compile(p), r)
    for p, r in [
        (r"(?<=\d)\\,(?=\d{3})", ""),
        (r"\\\$", "$"),
        (r"\\%", "%"),
        (r"\{,\}", ","),
        (r"\\[,;!: ]", " "),
        (r"\\(?:times|cdot)", "*"),
        (r"\\div", "/"),
        (r"\\(?:left|right)\b", ""),
        (r"\\[()\[\]]", " "),
        (r"\*\*|__", ""),
        (r"(?<![\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])", r"\1"),
        (r"`", ""),
    ]
]


def _frac_value(m: re.Match) -> str:
    """``\\frac{a}{b}`` as a decimal (``_fraction_value``), so that it reads as one number."""
    return _fraction_value(m.group(1), m.group(2))


def clean_markup(text: str) -> str:
    """Markdown emphasis and the LaTeX that wraps answers removed: ``**15**`` -> ``15``,
    ``\\text{ apples}`` -> `` apples``, ``\\$`` -> ``$``, ``\\frac{1}{2}`` -> ``0.5``; a Unicode
    minus sign (``−4``) read as ``-``."""
    return _clean(text, track=False)[0]


def clean_with_offsets(text: str) -> tuple[str, list[int]]:
    """``clean_markup(text)`` and, for each of its characters, the offset in ``text`` where the
    text it comes from begins, markup included: the markup a substitution removes belongs to the
    character after it (``15`` of ``**15**`` begins at the first ``*``, ``B`` of ``\\text{B}`` at
    the ``\\``), and the characters a substitution writes begin where what they replace begins
    (``0.5`` of ``\\frac{1}{2}`` at its ``\\``)."""
    return _clean(text, track=True)


def _clean(text: str, *, track: bool) -> tuple[str, list[int] | None]:
    pos = list(range(len(text))) if track else None
    text = text.replace(UNICODE_MINUS, "-")  # one character for one: offsets unchanged
    for _ in range(3):  # nested wrappers: \text{\textbf{B}}
        new, new_pos = _sub(_LATEX_WRAP, r"\1", text, pos)
        if new == text:
            break
        text, pos = new, new_pos
    text, pos = _sub(_FRAC, _frac_value, text, pos)
    for pattern, repl in _LATEX_SUBS:
        text, pos = _sub(pattern, repl, text, pos)
    return text, pos


def _sub(pattern: re.Pattern, repl, text: str, pos: list[int] | None) -> tuple[str, list[int] | None]:
    """``pattern.sub(repl, text)``, and with ``pos`` (where the text of each of ``text``'s characters
    begins) the same for the result (``clean_with_offsets``). ``repl``: a function, a literal, or ``\\1``."""
    if pos is None:
        return pattern.sub(repl, text), None
    if isinstance(repl, str) and "\\" in repl and repl != r"\1":
        raise ValueError(f"_sub tracks offsets of a literal, a function or \\1 only, not {repl!r}")
    out, out_pos, last, pending = [], [], 0, None

    def put(chars: str, where: list[int]) -> None:
        nonlocal pending
        if chars:
            out.append(chars)
            out_pos.extend([pending if pending is not None else where[0], *where[1:]])
            pending = None

    for m in pattern.finditer(text):
        put(text[last : m.start()], pos[last : m.start()])
        pending = pos[m.start()] if pending is None else pending  # what is removed goes to what follows
        if repl == r"\1":
            put(m.group(1), pos[m.start(1) : m.end(1)])
            if m.end(1) < m.end() and pending is None:
                pending = pos[m.end(1)]
        else:
            written = repl(m) if callable(repl) else repl
            put(written, [pos[m.start()]] * len(written))
        last = m.end()
    put(text[last:], pos[last:])
    return "".join(out), out_pos


def boxes(text: str) -> list[tuple[int, str]]:
    """(where it starts, its contents) of every ``\\boxed{…}`` / ``\\fbox{…}``, braces balanced, in order."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append((m.start(), text[m.end() : i - 1]))
    return out


def boxed_contents(text: str) -> list[str]:
    """The contents of every ``\\boxed{…}`` / ``\\fbox{…}``, braces balanced, in order."""
    return [content for _, content in boxes(text)]


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _canonical(d: Decimal) -> str:
    if not d.is_finite():
        return NULL
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def normalize_number(raw: str) -> str:
    """Canonical text of a number (``"$1,234.50"`` -> ``"1234.5"``), or ``NULL``."""
    s = re.sub(r"[$€£,\s%]", "", raw.replace(UNICODE_MINUS, "-")).rstrip(".")
    frac = _COMMON_FRACTION.fullmatch(s)
    if frac:
        return _fraction_value(frac.group(1), frac.group(2))
    try:
        return _canonical(Decimal(s))
    except InvalidOperation:
        return NULL


def value_at_start(text: str) -> str:
    """The number a text starts with; for a chain ``2 * 1.5 = 3`` the value after the last ``=``."""
    m = _VALUE_AT_START.match(text)
    if not m:
        return NULL
    chain = m.group(2)
    if "=" in chain:
        return normalize_number(NUMBER.findall(chain.rsplit("=", 1)[1])[0])
    frac = _COMMON_FRACTION.fullmatch(m.group(1) + chain)
    if frac:  # "3/4" is the number 0.75, not a 3 followed by a division
        return _fraction_value(frac.group(1), frac.group(2))
    return normalize_number(m.group(1))


# a common fraction: an integer numerator (optionally signed) over a positive integer denominator
_COMMON_FRACTION = re.compile(r"\s*(-?\d+)\s*/\s*(\d+)\s*")


def _fraction_value(num: str, den: str) -> str:
    """``num / den`` as the canonical decimal (12 places, as ``\\frac``), NULL for a zero denominator."""
    d = Decimal(den)
    return NULL if d == 0 else _canonical(round(Decimal(num) / d, 12))


def normalize_option(raw: str) -> str:
    s = raw.strip().strip("().").upper()
    if s in {"1", "2", "3", "4", "5"}:
        return "ABCDE"[int(s) - 1]
    return s if s in {"A", "B", "C", "D", "E"} else NULL


# a letter answer: upper case or a key 1-5, or lower case in parentheses or alone at the end
_LETTER = r"\(?([A-E1-5])\)?(?![\w])|\(([a-e])\)|([a-e])(?=[.)]?\s*$)"
# an answer line's letter: the letter, then the end, punctuation, or " - text" / " (text)"
LINE_LETTER = re.compile(r"\s*" + _QUOTE + r"\(?([A-Ea-e1-5])\)?(?:\s*$|[.):,\"'”’]|\s+[-–(])")

# a line that starts with an option label: "D) Sand", "(B) water", "C. salt"
LABELLED_LINE = re.compile(r"\s*(?:\(([A-E])\)|([A-E])[).])\s+\S")


def letter_at_start(text: str) -> str:
    m = re.match(r"\s*" + _QUOTE + r"(?:" + _LETTER + ")", text, re.MULTILINE)
    if not m:
        return NULL
    return normalize_option(next(g for g in m.groups() if g))
