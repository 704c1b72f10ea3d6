"""Deterministic answer extraction and normalisation, per answer type.

Every response maps to one discrete answer value; anything unparsable maps to ``NULL``, which is an
answer category like any other in the conditional answer distributions. The rules, in order
(docs/extraction.md):

0. Only the *response* is read: text inside ``<think>…</think>`` is dropped (a prompt whose chat
   template opens ``<think>`` passes ``preamble="<think>"``). A response that ends inside an
   unclosed think section (it ran out of tokens while thinking) is read from its think text only
   when the rest gives no answer.
1. The first **answer line**: a ``####`` (not part of ``#####``) followed, on its line, by an
   answer: a number (``#### 15``, ``#### $1,250.00``, ``#### **15** apples``, ``#### 25%``,
   ``#### \\boxed{15}``, ``#### The answer is 15``) or an option letter (``#### B``, ``#### (B) a
   balance``). A ``####`` followed by anything else is a markdown heading (``#### Step 1: …``,
   ``#### 1. Find the cost``) and is skipped.
2. The last ``\\boxed{…}`` (balanced braces; ``\\text{}``, ``\\$``, ``\\%``, units inside allowed).
3. The last "answer is / answer: / option is" phrase followed by an answer; ``answer is 2 * 1.5 =
   3`` reads the value after the last ``=``.
4. Numbers, if the dataset allows it: the last number. Options: a lone letter on the last line
   (``B``, ``(B)``, ``B.``), else the one line that starts with an option label (``D) Sand``),
   when only one line does (an options list repeated back is no answer).

Markdown emphasis (``**``, ``__``) and LaTeX wrappers are removed before reading. Numbers drop
currency signs, ``%`` and thousands separators and compare by value (``18.0`` == ``18``); option
keys ``1``-``5`` map to ``A``-``E``. The first answer line wins for every model: a trajectory ends
at its settled answer (``answer_is_final``), so nothing after that line is part of the response.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation

NULL = "NULL"
ANSWER_TYPES = ("numeric", "option")
FINAL_MARKER = "####"  # the answer-line marker every siaflow prompt asks for
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
UNICODE_MINUS = "\u2212"  # "−", the minus sign of typeset mathematics (and of terse answers)

# a number: optional sign (not a minus that follows a digit, as in "10-4"), optional currency,
# strict thousands groups or plain digits, optional decimals
_NUM = (
    r"(?:(?<![\w)])-)?(?:[$€£]\s*)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
    r"|(?:(?<![\w)])-)?(?:[$€£]\s*)?\.\d+"
)
_NUM_RE = re.compile(_NUM)
# a value at the start of a text: a number, or an arithmetic chain whose value follows the last "="
_OP = r"\s*(?:[-+*/×÷x]|=)\s*"
_QUOTE = r"[\"'“‘]?"
_VALUE_AT_START = re.compile(r"\s*" + _QUOTE + r"\s*(" + _NUM + r")((?:" + _OP + r"(?:" + _NUM + r"))*)")
_MARKER = re.compile(r"(?<!#)####(?!#)")
_PHRASE = re.compile(r"(?:answer|option)\s*(?:is|:)\s*:?\s*", re.IGNORECASE)
_LEAD_PHRASE = re.compile(
    r"\s*(?:the\s+)?(?:final\s+|correct\s+)?(?:answer|option)\s*(?:is|:)?\s*:?\s*"
    r"|\s*[a-z]\s*=\s*",
    re.IGNORECASE,
)
# an enumerated heading: "1. Find the cost", "2) Compute"
_ENUMERATOR = re.compile(r"\s*\d+[.)]\s+[^\W\d_]")


# --------------------------------------------------------------------------------------------
# Markup: think sections, markdown emphasis, LaTeX wrappers
# --------------------------------------------------------------------------------------------


def think_sections(text: str) -> tuple[str, str | None]:
    """(text outside ``<think>…</think>`` sections, the text of a think section left open at the
    end or None). A ``</think>`` with no open section is ordinary text."""
    outside, inside, depth_open = [], [], False
    for part in re.split(r"(<think>|</think>)", text):
        if part == THINK_OPEN:
            depth_open, inside = True, []
        elif part == THINK_CLOSE and depth_open:
            depth_open = False
        elif depth_open:
            inside.append(part)
        else:
            outside.append(part)
    return "".join(outside), ("".join(inside) if depth_open else None)


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
    text = text.replace(UNICODE_MINUS, "-")
    for _ in range(3):  # nested wrappers: \text{\textbf{B}}
        new = _LATEX_WRAP.sub(r"\1", text)
        if new == text:
            break
        text = new
    text = _FRAC.sub(_frac_value, text)
    for pattern, repl in _LATEX_SUBS:
        text = pattern.sub(repl, text)
    return text


def boxed_contents(text: str) -> list[str]:
    """The contents of every ``\\boxed{…}`` / ``\\fbox{…}``, braces balanced, in order."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append(text[m.end() : i - 1])
    return out


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


def _value_at_start(text: str) -> str:
    """The number a text starts with; for a chain ``2 * 1.5 = 3`` the value after the last ``=``."""
    m = _VALUE_AT_START.match(text)
    if not m:
        return NULL
    chain = m.group(2)
    if "=" in chain:
        return normalize_number(_NUM_RE.findall(chain.rsplit("=", 1)[1])[0])
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
_LINE_LETTER = re.compile(r"\s*" + _QUOTE + r"\(?([A-Ea-e1-5])\)?(?:\s*$|[.):,\"'”’]|\s+[-–(])")


_LABELLED_LINE = re.compile(r"\s*(?:\(([A-E])\)|([A-E])[).])\s+\S")


def _letter_at_start(text: str) -> str:
    m = re.match(r"\s*" + _QUOTE + r"(?:" + _LETTER + ")", text, re.MULTILINE)
    if not m:
        return NULL
    return normalize_option(next(g for g in m.groups() if g))


def answer_on_line(content: str, answer_type: str) -> str:
    """The answer an answer line states (the text after ``####``, on its line), or NULL when the
    line is not an answer (a markdown heading such as ``Step 1: …`` or ``1. Find the cost``)."""
    text = clean_markup(content)
    boxed = boxed_contents(text)
    if boxed:
        text = boxed[0]
    m = _LEAD_PHRASE.match(text)
    if m:
        text = text[m.end() :]
    if answer_type == "numeric":
        if _ENUMERATOR.match(text):
            return NULL
        return _value_at_start(text)
    if answer_type == "option":
        if re.match(r"\s*\d+[.)]\s+\w", text):
            return NULL
        m = _LINE_LETTER.match(text)
        return normalize_option(m.group(1)) if m else NULL
    raise ValueError(f"unknown answer_type {answer_type!r}; choose one of {ANSWER_TYPES}")


def answer_lines(text: str):
    """(content, complete) of every ``####`` in ``text`` in order: the text after the marker on its
    line (on the next non-empty line when the marker ends its line), and whether that line is
    complete (a newline follows it)."""
    for m in _MARKER.finditer(text):
        rest = text[m.end() :]
        lead = len(rest) - len(rest.lstrip())
        end = rest.find("\n", lead)
        yield (rest[lead:] if end < 0 else rest[lead:end]), end >= 0


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


def _first_answer_line(text: str, answer_type: str, *, complete_only: bool = False) -> str:
    for content, complete in answer_lines(text):
        if complete_only and not complete:
            return NULL
        value = answer_on_line(content, answer_type)
        if value != NULL:
            return value
    return NULL


def _extract_visible(text: str, answer_type: str, last_number_fallback: bool) -> str:
    value = _first_answer_line(text, answer_type)
    if value != NULL:
        return value
    text = clean_markup(text)
    boxed = boxed_contents(text)
    if boxed:
        return answer_on_line(boxed[-1], answer_type)
    for m in reversed(list(_PHRASE.finditer(text))):
        rest = text[m.end() :]
        value = _value_at_start(rest) if answer_type == "numeric" else _letter_at_start(rest)
        if value != NULL:
            return value
    if answer_type == "numeric":
        if last_number_fallback:
            nums = _NUM_RE.findall(text)
            if nums:
                return normalize_number(nums[-1])
        return NULL
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        m = re.fullmatch(r"\s*\(?([A-E])\)?[.)]?\s*", lines[-1])
        if m:
            return m.group(1)
    # an option stated as its label and text ("D) Sand"), on the only line that starts with a label
    labelled = [m.group(1) or m.group(2) for ln in lines if (m := _LABELLED_LINE.match(ln))]
    return labelled[0] if len(labelled) == 1 else NULL


def extract_answer(text: str, answer_type: str, *, last_number_fallback: bool = True, preamble: str = "") -> str:
    """The answer a response gives (rules in the module docstring); ``preamble``: text the prompt
    put before the response that changes how it reads (``"<think>"`` for a prompt that opens a think
    section)."""
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"unknown answer_type {answer_type!r}; choose one of {ANSWER_TYPES}")
    visible, open_think = think_sections(preamble + text)
    value = _extract_visible(visible, answer_type, last_number_fallback)
    if value == NULL and open_think is not None:
        value = _extract_visible(open_think, answer_type, last_number_fallback)
    return value


def answer_is_final(text: str, answer_type: str, *, preamble: str = "") -> bool:
    """True when no continuation of ``text`` can change its extracted answer, so generation can stop.

    Only rule 1 can settle early: the first answer line outside think sections, once its line is
    complete (a newline follows it). The text outside think sections only grows as text is
    appended, a complete line never changes, and a line that was not an answer stays one that is
    not, so that answer is the finished response's. Rules 2-4 read the *last* of something and
    can be overridden by later text: never final before the response ends."""
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"unknown answer_type {answer_type!r}; choose one of {ANSWER_TYPES}")
    if FINAL_MARKER not in text:
        return False
    visible, _ = think_sections(preamble + text)
    return _first_answer_line(visible, answer_type, complete_only=True) != NULL


def answer_line_open(text: str) -> bool:
    """True when the last ``####`` of ``text`` has not yet completed its answer line: generation
    must reach the next newline before ``answer_is_final`` can tell (the vLLM backend's rounds)."""
    lines = list(answer_lines(text))
    return bool(lines) and not lines[-1][1]


def normalize_gold(gold: str, answer_type: str) -> str:
    """Normalise a gold answer with the same rule as model answers; unparsable gold is an error
    the caller must report (a NULL gold would silently count NULL answers as correct)."""
    return normalize_number(gold) if answer_type == "numeric" else normalize_option(gold)


def response_rules(dataset_spec: dict, template, *, stop_at_answer: bool, example_prompt: str) -> dict:
    """How a response to a prompt made from ``template`` on a dataset is read and where it ends:
    its answer extractor, its early-stop test (None when ``stop_at_answer`` is off) and the
    template's stop strings. A prompt that leaves a ``<think>`` section open (R1-style chat
    templates; ``example_prompt`` is one of them) starts the response inside it."""
    preamble = THINK_OPEN if leaves_think_open(example_prompt) else ""
    answer_type = dataset_spec["answer_type"]
    settled = functools.partial(answer_is_final, answer_type=answer_type, preamble=preamble)
    return {
        "extract": functools.partial(
            extract_answer,
            answer_type=answer_type,
            preamble=preamble,
            last_number_fallback=dataset_spec.get("last_number_fallback", True),
        ),
        "answer_final": settled if stop_at_answer else None,
        # whether a text's answer can no longer change, whatever stop_at_answer says (probes)
        "settled": settled,
        "answer_type": answer_type,
        "stop": tuple(template.get("stop", ())) if isinstance(template, dict) else (),
        "preamble": preamble,
    }
