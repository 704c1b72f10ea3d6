"""Where a response's final answer begins (``answers.answer_start``) and the token that holds it
(``backends.base.token_at``, the rollouts' ``answer_start`` column): docs/extraction.md, "Where the
answer begins"."""

import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siaflow.answers import NULL, answer_lines, answer_on_line, answer_start, extract_answer, think_sections
from siaflow.generation.backends.base import token_at
from siaflow.generation.rollouts import ROLLOUT_COLUMNS

FB = {"last_number_fallback": True}
R1 = {"preamble": "<think>"}  # a prompt that leaves a think section open (DeepSeek-R1-style templates)

# text, answer type, keywords, where the statement read begins (counted by hand)
CASES = [
    # rule 1: the ####
    ("#### 42", "numeric", {}, 0),
    ("So the total is 42.\n#### 42", "numeric", {}, 20),
    ("55-8=47. 47+7=54. 54+9=63. #### 63", "numeric", {}, 27),  # the toy world
    ("#### Step 1: Add\n3 + 12 = 15\n#### 15", "numeric", {}, 29),  # a heading is no answer line
    ("Total:\n#### **15** apples", "numeric", {}, 7),
    ("#### **15**", "numeric", {}, 0),
    ("#### 4 wait no #### 5", "numeric", {}, 0),  # the first answer line
    ("####\n15\n", "numeric", {}, 0),  # the value on the next line
    ("Water is a liquid.\n#### B", "option", {}, 19),
    # rule 2: the \boxed of the last box
    ("\\boxed{4} and the answer is 7", "numeric", {}, 0),
    ("First \\boxed{3}, then \\boxed{5}", "numeric", {}, 22),
    ("The answer is $\\boxed{\\text{B}}$", "option", {}, 15),
    ("\\boxed{\\frac{3}{4}}", "numeric", {}, 0),
    # rule 3: the phrase read; markup around its first character belongs to it
    ("The answer is 5. Wait, the answer is 9.", "numeric", {}, 27),
    ("**Answer:** 37", "numeric", {}, 0),
    ("So:\n**Answer:** 37", "numeric", {}, 4),
    ("The answer is **37** dollars.", "numeric", {}, 4),
    ("\\textbf{Answer:} 15", "numeric", {}, 0),
    ("The answer is (B).", "option", {}, 4),
    # rule 4: the last number (where the dataset asks for it), the option line read
    ("She has 3 red and 4 blue, so 7 in total.", "numeric", FB, 29),
    ("She has 3 red and 4 blue, so 7 in total.", "numeric", {}, None),  # the default: NULL
    ("so **37**", "numeric", FB, 3),
    ("It costs \\$20.50", "numeric", FB, 9),
    ("12 - 15 = -3", "numeric", FB, 10),  # the sign
    ("so it is \\frac{3}{4}", "numeric", FB, 9),
    ("Water is the only liquid.\nB", "option", {}, 26),
    ("Reasoning...\n  (C)", "option", {}, 15),
    ("Options:\nD) Sand\nthat is all", "option", {}, 9),
    # NULL
    ("I don't know.", "numeric", {}, None),
    ("The answer is a bit tricky.", "option", {}, None),
    ("#### Final Answer", "numeric", FB, None),
    # think sections: skipped, and an answer read from an unclosed one begins inside it
    ("<think>Maybe #### 12\nNo: 3 + 12 = 15.</think>\n#### 15", "numeric", {}, 46),
    ("<think>It is 15, so \\boxed{15}</think>The answer is 16.", "numeric", {}, 42),
    ("<think>#### A?</think>\n#### C", "option", {}, 23),
    ("<think>I get 3 + 12 = 15, so the answer is 15", "numeric", {}, 33),
    ("<think>I get 3 + 12 = 15 and then", "numeric", FB, 22),
    ("<think>I get 3 + 12 = 15 and then", "numeric", {}, None),
    # preamble "<think>": offsets are in the response, not in preamble + response
    ("#### 4\nwait</think>\n#### 5", "numeric", R1, 20),
    ("hmm</think>\n#### 5\n", "numeric", R1, 12),
    ("Let me add: 3 + 4 = 7, so the answer is 7", "numeric", R1, 30),  # ran out while thinking
    ("Let me think.\n#### 3\n</think>\n\nThe answer is \\boxed{7}.", "numeric", R1, 45),
]


@pytest.mark.parametrize("text, answer_type, kw, want", CASES)
def test_where_the_answer_begins(text, answer_type, kw, want):
    assert answer_start(text, answer_type, **kw) == want
    assert (want is None) == (extract_answer(text, answer_type, **kw) == NULL)


# --- property: the response read from its answer_start gives the same answer ------------------------


def _case_texts() -> list[str]:
    import test_answer_final as final
    import test_extraction as ex

    texts = [t for t, *_ in ex.NUMERIC + ex.LAST_NUMBER + ex.OPTION + ex.SHAPES + final.NUMERIC + final.OPTION]
    texts += [
        c["text"] for c in json.loads((Path(__file__).parent / "data/smollm2_responses.json").read_text())["cases"]
    ]
    return texts + [t for t, *_ in CASES]


def _check_suffix(text: str, answer_type: str, last_number_fallback: bool, preamble: str) -> int | None:
    """Read from its start on, a response gives the same answer (the suffix read without the
    preamble: it starts after the prompt's think section closed, or inside an unclosed one, which
    holds no tag); for rule 1, no answer line lies before its ####."""
    kw = {"last_number_fallback": last_number_fallback}
    start = answer_start(text, answer_type, preamble=preamble, **kw)
    value = extract_answer(text, answer_type, preamble=preamble, **kw)
    if start is None:
        assert value == NULL
        return None
    assert 0 <= start < len(text)
    assert extract_answer(text[start:], answer_type, **kw) == value, (text, start)
    if text.startswith("####", start):  # rule 1
        before, _ = think_sections(preamble + text[:start])
        assert all(answer_on_line(c, answer_type) == NULL for c, _ in answer_lines(before)), (text, start)
    return start


@pytest.mark.parametrize("answer_type", ["numeric", "option"])
@pytest.mark.parametrize("preamble", ["", "<think>"])
def test_a_response_read_from_its_answer_start_gives_the_same_answer(answer_type, preamble):
    """Over every case of tests/test_extraction.py and tests/test_answer_final.py. (Not a law for any
    text: a statement that starts inside a LaTeX wrapper opened before it and closed after it,
    ``\\text{so the answer is }4``, reads differently from its start on.)"""
    located = 0
    for text in _case_texts():
        for fallback in (False, True):
            located += _check_suffix(text, answer_type, fallback, preamble) is not None
    assert located > 100
    # the exception: the phrase begins at its own first character, inside the wrapper
    text = "\\text{so the answer is }4"
    assert answer_start(text, "numeric") == 13 and extract_answer(text, "numeric") == "4"
    assert extract_answer(text[13:], "numeric") == NULL


@pytest.mark.parametrize("answer_type", ["numeric", "option"])
@pytest.mark.parametrize("preamble", ["", "<think>"])
def test_the_same_on_responses_shaped_like_real_models(answer_type, preamble):
    import test_answer_final as final

    answers = final.NUMBERS if answer_type == "numeric" else final.LETTERS

    @settings(max_examples=300, deadline=None)
    @given(st.lists(final._lines(answers), min_size=1, max_size=8), st.booleans(), st.booleans())
    def check(lines, trailing_newline, fallback):
        _check_suffix("\n".join(lines) + ("\n" if trailing_newline else ""), answer_type, fallback, preamble)

    check()


def test_markup_removed_keeps_where_each_character_came_from():
    from siaflow.answer_text import clean_markup, clean_with_offsets

    # "**" before 15 goes to its 1, the "**" after it to the space; "$" is written for "\\$"
    assert clean_with_offsets("**15** \\$3") == ("15 $3", [0, 3, 4, 7, 9])
    assert clean_with_offsets("\\frac{1}{2} or \\text{B}") == ("0.5 or B", [0, 0, 0, 11, 12, 13, 14, 15])
    for text in _case_texts():
        clean, pos = clean_with_offsets(text)
        assert clean == clean_markup(text) and len(pos) == len(clean)
        assert pos == sorted(pos) and all(0 <= p < len(text) for p in pos)


def test_the_rule_that_wins_decides_where():
    """The answer and its start come from the same rule: a box after an answer line does not move
    the start, a phrase after a box does not, a number after a phrase does not."""
    text = "The answer is 3. \\boxed{4} #### 5\nso 6"
    assert extract_answer(text, "numeric", **FB) == "5" and answer_start(text, "numeric", **FB) == text.index("####")
    text = "The answer is 3. \\boxed{4} and 6"
    assert extract_answer(text, "numeric", **FB) == "4" and answer_start(text, "numeric", **FB) == text.index("\\boxed")
    text = "so the answer is 3, from 1 + 2"
    assert extract_answer(text, "numeric", **FB) == "3" and answer_start(text, "numeric", **FB) == text.index("answer")


# --- the token that holds it ---------------------------------------------------------------------


def test_token_at_on_a_character_tokenizer_is_the_offset():
    ids = [ord(c) for c in "ab #### 7"]

    def decode(xs):
        return "".join(map(chr, xs))

    assert [token_at(decode, ids, i) for i in range(len(ids))] == list(range(len(ids)))
    with pytest.raises(ValueError, match="outside"):
        token_at(decode, ids, len(ids))


@pytest.mark.parametrize("per_byte", [False, True], ids=["lossy", "byte-fallback"])
def test_token_at_with_tokens_that_split_characters(per_byte):
    """Byte-level tokens: a prefix that ends inside a character decodes to a replacement character
    (one, or one per byte with byte fallback); the token that holds a character's first byte holds it."""
    text = "é€ #### −4"
    raw = text.encode()
    tokens = [raw[i : i + 1] for i in range(len(raw))]  # one byte per token
    ids = list(range(len(tokens)))

    def decode(xs):
        data = b"".join(tokens[i] for i in xs)
        if not per_byte:
            return data.decode("utf-8", errors="replace")
        out, i = "", 0
        while i < len(data):  # whole characters, then one U+FFFD per byte of an incomplete one
            for n in (1, 2, 3, 4):
                try:
                    out += data[i : i + n].decode()
                    i += n
                    break
                except UnicodeDecodeError:
                    continue
            else:
                out += "\ufffd" * (len(data) - i)
                break
        return out

    assert decode(ids) == text
    for offset in range(len(text)):
        assert token_at(decode, ids, offset) == len(text[:offset].encode()), offset  # the character's first byte


def test_rollouts_record_the_token_where_the_answer_line_starts():
    """The scripted backend (tests/fakes.py): one character per token, so the answer's token is the
    offset of its ####; without ``locate`` the column is there, null."""
    from dataclasses import replace

    from fakes import SCRIPT, CharBackend

    from siaflow.answers import ResponseRules, response_rules
    from siaflow.generation.backends import Decoding
    from siaflow.generation.rollouts import run_rollouts
    from siaflow.generation.settings import DrawSettings

    backend = CharBackend()
    questions = pl.DataFrame({"question_id": ["q"], "gold": ["7"]})
    rules = response_rules({"answer_type": "numeric"}, "{question}", stop_at_answer=True, example_prompt="Q?\n")
    draw = DrawSettings(Decoding(max_new_tokens=200), seed=0, n_samples=2)
    roll = run_rollouts(backend, questions, ["Q?\n"], draw=draw, rules=rules)
    assert roll.columns == list(ROLLOUT_COLUMNS) and roll.schema["answer_start"] == pl.Int32
    response = SCRIPT[3:]
    assert roll["answer_start"].to_list() == [response.index("####")] * 2
    bare = run_rollouts(backend, questions, ["Q?\n"], draw=draw, rules=ResponseRules(rules.extract))
    assert bare.columns == list(ROLLOUT_COLUMNS) and bare["answer_start"].is_null().all()
    unanswered = run_rollouts(
        backend,
        questions,
        ["Q?\n"],
        draw=replace(draw, decoding=Decoding(max_new_tokens=20)),
        rules=replace(rules, answer_final=None),
    )  # cut at its budget before its answer line: NULL, and no start
    assert unanswered["answer"].to_list() == [NULL] * 2 and unanswered["answer_start"].is_null().all()


def test_rollouts_of_the_toy_model_begin_their_answer_at_the_answer_line():
    """The informative toy model (resources/toy_models/informative) writes ``55-8=47. ... #### 63``:
    its answer_start is the token where ``####`` starts, and every checkpoint k <= answer_start
    (k < T) has a prefix without any of it."""
    import torch

    from siaflow.answers import response_rules
    from siaflow.generation.backends import Decoding, make_backend
    from siaflow.generation.rollouts import run_rollouts
    from siaflow.generation.settings import DrawSettings
    from siaflow.inputs.toy import make_dataset
    from siaflow.keys import checkpoint_positions

    torch.set_num_threads(1)
    backend = make_backend(
        "transformers", str(Path(__file__).resolve().parents[1] / "resources/toy_models/informative")
    )
    rows = make_dataset(4, seed=123)
    questions = pl.DataFrame({"question_id": [r["question_id"] for r in rows], "gold": [r["gold"] for r in rows]})
    prompts = [f"Q: {r['question']}\nA: " for r in rows]
    rules = response_rules({"answer_type": "numeric"}, prompts[0], stop_at_answer=True, example_prompt=prompts[0])
    draw = DrawSettings(Decoding(temperature=1.0, top_p=1.0, max_new_tokens=64), seed=0, n_samples=2)
    roll = run_rollouts(backend, questions, prompts, draw=draw, rules=rules)
    answered = roll.filter(pl.col("answer") != NULL)
    assert answered.height >= 6 and roll.filter(pl.col("answer") == NULL)["answer_start"].is_null().all()
    for r in answered.iter_rows(named=True):
        ids, start = list(r["token_ids"]), r["answer_start"]
        assert start == r["text"].index("####")  # its tokenizer has one token per character
        assert backend.decode(ids[start:]).startswith("####"), r["text"]
        assert "#" not in backend.decode(ids[:start]) and "#" in backend.decode(ids[: start + 1])
        before = [k for k in checkpoint_positions(r["T"], 4) if k <= start and k < r["T"]]
        assert before and all("#" not in backend.decode(ids[:k]) for k in before)
