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
4. Numbers, only if the dataset asks for it (``last_number_fallback``, off by default: a response
   that states no answer is NULL): the last number. Options: a lone letter on the last line
   (``B``, ``(B)``, ``B.``), else the one line that starts with an option label (``D) Sand``),
   when only one line does (an options list repeated back is no answer).

Markdown emphasis (``**``, ``__``) and LaTeX wrappers are removed before reading
(``siaflow.answer_text``, with think sections and the normalised values). Numbers drop
currency signs, ``%`` and thousands separators and compare by value (``18.0`` == ``18``); option
keys ``1``-``5`` map to ``A``-``E``. The first answer line wins for every model: a trajectory ends
at its settled answer (``answer_is_final``), so nothing after that line is part of the response.
``answer_start`` says where in a response the statement that ``extract_answer`` reads begins; both
come from one code path (each rule returns its value and where it read it).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from siaflow.answer_text import (
    LABELLED_LINE,
    LINE_LETTER,
    NULL,
    NUMBER,
    THINK_OPEN,
    boxed_contents,
    boxes,
    clean_markup,
    clean_with_offsets,
    leaves_think_open,
    letter_at_start,
    normalize_number,
    normalize_option,
    think_sections,
    think_spans,
    value_at_start,
)

ANSWER_TYPES = ("numeric", "option")
FINAL_MARKER = "####"  # the answer-line marker every siaflow prompt asks for

_MARKER = re.compile(r"(?<!#)####(?!#)")
_PHRASE = re.compile(r"(?:answer|option)\s*(?:is|:)\s*:?\s*", re.IGNORECASE)
_LEAD_PHRASE = re.compile(
    r"\s*(?:the\s+)?(?:final\s+|correct\s+)?(?:answer|option)\s*(?:is|:)?\s*:?\s*"
    r"|\s*[a-z]\s*=\s*",
    re.IGNORECASE,
)
# an enumerated heading: "1. Find the cost", "2) Compute"
_ENUMERATOR = re.compile(r"\s*\d+[.)]\s+[^\W\d_]")


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
        return value_at_start(text)
    if answer_type == "option":
        if re.match(r"\s*\d+[.)]\s+\w", text):
            return NULL
        m = LINE_LETTER.match(text)
        return normalize_option(m.group(1)) if m else NULL
    raise ValueError(f"unknown answer_type {answer_type!r}; choose one of {ANSWER_TYPES}")


def answer_lines(text: str):
    """(content, complete) of every ``####`` in ``text`` in order: the text after the marker on its
    line (on the next non-empty line when the marker ends its line), and whether that line is
    complete (a newline follows it)."""
    for _, content, complete in _answer_lines(text):
        yield content, complete


def _answer_lines(text: str):
    """``answer_lines``, each with where its marker starts in ``text``."""
    for m in _MARKER.finditer(text):
        rest = text[m.end() :]
        lead = len(rest) - len(rest.lstrip())
        end = rest.find("\n", lead)
        yield m.start(), (rest[lead:] if end < 0 else rest[lead:end]), end >= 0


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------
# Each rule returns (value, offset): the answer it reads and where, in the text it reads, the
# statement it read begins, so that one code path decides both what the answer is and where it
# starts (extract_answer, answer_start).


def _first_answer_line(text: str, answer_type: str, *, complete_only: bool = False) -> tuple[str, int | None]:
    """Rule 1: the first answer line's value and where its ``####`` starts."""
    for start, content, complete in _answer_lines(text):
        if complete_only and not complete:
            return NULL, None
        value = answer_on_line(content, answer_type)
        if value != NULL:
            return value, start
    return NULL, None


def _read_clean(text: str, answer_type: str, last_number_fallback: bool) -> tuple[str, int | None]:
    """Rules 2-4 on a text whose markup is cleaned; the offset is in that text."""
    found = boxes(text)
    if found:
        start, content = found[-1]
        return answer_on_line(content, answer_type), start
    for m in reversed(list(_PHRASE.finditer(text))):
        rest = text[m.end() :]
        value = value_at_start(rest) if answer_type == "numeric" else letter_at_start(rest)
        if value != NULL:
            return value, m.start()
    if answer_type == "numeric":
        if last_number_fallback:
            nums = list(NUMBER.finditer(text))
            if nums:
                return normalize_number(nums[-1].group()), nums[-1].start()
        return NULL, None
    # the non-empty lines, each with where its first non-blank character is
    body = text.strip()
    at, lines = len(text) - len(text.lstrip()), []
    for ln, with_end in zip(body.splitlines(), body.splitlines(keepends=True)):
        if ln.strip():
            lines.append((ln, at + len(ln) - len(ln.lstrip())))
        at += len(with_end)
    if lines:
        m = re.fullmatch(r"\s*\(?([A-E])\)?[.)]?\s*", lines[-1][0])
        if m:
            return m.group(1), lines[-1][1]
    # an option stated as its label and text ("D) Sand"), on the only line that starts with a label
    labelled = [(m.group(1) or m.group(2), start) for ln, start in lines if (m := LABELLED_LINE.match(ln))]
    return labelled[0] if len(labelled) == 1 else (NULL, None)


def _read(text: str, answer_type: str, last_number_fallback: bool, *, locate: bool) -> tuple[str, int | None]:
    """Rules 1-4 on a text outside think sections: (its answer, where in ``text`` the statement read
    begins), (NULL, None) when it gives none. Without ``locate`` the offset of rules 2-4 (read on
    the cleaned text) is not mapped back, and is None."""
    value, start = _first_answer_line(text, answer_type)
    if value != NULL:
        return value, start
    clean, pos = clean_with_offsets(text) if locate else (clean_markup(text), None)
    value, start = _read_clean(clean, answer_type, last_number_fallback)
    if value == NULL:
        return NULL, None
    return value, (pos[start] if locate else None)


def _answer(
    text: str, answer_type: str, *, last_number_fallback: bool, preamble: str, locate: bool
) -> tuple[str, int | None]:
    """(the answer a response gives, where in ``text`` its statement begins, None without ``locate``)."""
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"unknown answer_type {answer_type!r}; choose one of {ANSWER_TYPES}")
    full = preamble + text
    spans, open_at = think_spans(full)
    visible = "".join(full[a:b] for a, b in spans)
    value, start = _read(visible, answer_type, last_number_fallback, locate=locate)
    if value != NULL:
        if locate:  # the visible offset, back in the full text
            for a, b in spans:
                if start < b - a:
                    start = a + start
                    break
                start -= b - a
    elif open_at is not None:  # ran out while thinking: the open think section's text
        value, start = _read(full[open_at:], answer_type, last_number_fallback, locate=locate)
        if value != NULL and locate:
            start += open_at
    if value == NULL or not locate:
        return value, None
    if start < len(preamble):
        raise ValueError(f"the answer is read from the preamble {preamble!r}, not from the response")
    return value, start - len(preamble)


def extract_answer(text: str, answer_type: str, *, last_number_fallback: bool = False, preamble: str = "") -> str:
    """The answer a response gives (rules in the module docstring); ``preamble``: text the prompt
    put before the response that changes how it reads (``"<think>"`` for a prompt that opens a think
    section). ``last_number_fallback``: rule 4 for numbers (a bare last number is the answer), off
    unless a dataset asks for it: a response that stops without stating its answer is NULL."""
    return _answer(text, answer_type, last_number_fallback=last_number_fallback, preamble=preamble, locate=False)[0]


def answer_start(text: str, answer_type: str, *, last_number_fallback: bool = False, preamble: str = "") -> int | None:
    """Where in ``text`` the statement that ``extract_answer`` reads (same arguments) begins: the
    character offset of the ``####`` of the first answer line (rule 1), of the ``\\boxed`` /
    ``\\fbox`` of the last box (rule 2), of the "answer is" / "answer:" / "option is" phrase read
    (rule 3), or of the first character of the last number or of the option line read (rule 4);
    None when the answer is NULL. Markup that wraps the statement's first character belongs to it
    (``**Answer:** 37`` begins at its first ``*``, ``\\text{B}`` at its ``\\``); an answer read
    from an unclosed think section begins inside it.

    Over a rollout's tokens, the answer begins at the token that holds this character
    (``generation.backends.base.token_at``), and a checkpoint k (a prefix of k generated tokens)
    is *before the answer* when k <= that token's index and k < T: its prefix holds none of the
    statement."""
    return _answer(text, answer_type, last_number_fallback=last_number_fallback, preamble=preamble, locate=True)[1]


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
    return _first_answer_line(visible, answer_type, complete_only=True)[0] != NULL


def answer_line_open(text: str) -> bool:
    """True when the last ``####`` of ``text`` has not yet completed its answer line: generation
    must reach the next newline before ``answer_is_final`` can tell (the vLLM backend's rounds)."""
    lines = list(answer_lines(text))
    return bool(lines) and not lines[-1][1]


def normalize_gold(gold: str, answer_type: str) -> str:
    """Normalise a gold answer with the same rule as model answers; unparsable gold is an error
    the caller must report (a NULL gold would silently count NULL answers as correct)."""
    return normalize_number(gold) if answer_type == "numeric" else normalize_option(gold)


@dataclass(frozen=True)
class ResponseRules:
    """How a response is read and where it ends (made by ``response_rules``; a test may give only
    ``extract``). ``extract``: its answer; ``answer_start``: where the statement ``extract`` reads
    begins (a character offset, None when the answer is NULL); ``answer_final``: the early-stop
    test (None when ``stop_at_answer`` is off); ``settled``: whether a text's answer can no longer
    change, whatever ``stop_at_answer`` says (probes); ``stop``: the template's stop strings;
    ``preamble``: the think section a prompt leaves open; ``reading``: how ``extract`` and
    ``answer_start`` read a response (part of the identity of resumable work)."""

    extract: Callable[[str], str]
    answer_start: Callable[[str], int | None] | None = None
    answer_final: Callable[[str], bool] | None = None
    settled: Callable[[str], bool] | None = None
    answer_type: str = "numeric"
    stop: tuple[str, ...] = ()
    preamble: str = ""
    reading: dict | None = None

    def as_identity(self) -> dict:
        """What draws made under these rules depend on: resumable parts made otherwise are redone."""
        return {"stop_at_answer": self.answer_final is not None, "stop": list(self.stop), "reading": self.reading}


def response_rules(dataset_spec: dict, template, *, stop_at_answer: bool, example_prompt: str) -> ResponseRules:
    """How a response to a prompt made from ``template`` on a dataset is read and where it ends
    (``ResponseRules``). A prompt that leaves a ``<think>`` section open (R1-style chat templates;
    ``example_prompt`` is one of them) starts the response inside it."""
    preamble = THINK_OPEN if leaves_think_open(example_prompt) else ""
    answer_type = dataset_spec["answer_type"]
    settled = functools.partial(answer_is_final, answer_type=answer_type, preamble=preamble)
    reading = dict(
        answer_type=answer_type, preamble=preamble, last_number_fallback=dataset_spec.get("last_number_fallback", False)
    )
    return ResponseRules(
        extract=functools.partial(extract_answer, **reading),
        answer_start=functools.partial(answer_start, **reading),
        answer_final=settled if stop_at_answer else None,
        settled=settled,
        answer_type=answer_type,
        stop=tuple(template.get("stop", ())) if isinstance(template, dict) else (),
        preamble=preamble,
        reading=reading,
    )
