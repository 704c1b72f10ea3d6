"""`answer_is_final` may stop generation only where no continuation can change the answer."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siaflow.answers import answer_is_final, answer_line_open, extract_answer

# texts, whether they are final, for each answer type
NUMERIC = [
    ("47+7=54. #### 54\n", True),
    ("#### 54 apples\n", True),
    ("#### 54 apples", False),  # only a complete line is read ("#### 1. Find the cost" starts alike)
    ("#### 54", False),  # 540 may follow
    ("#### 54.", False),  # 54.5 may follow
    ("#### 1,2", False),  # 1,234 may follow
    ("#### 1,234 \n", True),
    ("#### $", False),
    ("#### ", False),
    ("####\n", False),  # the number may be on the next line
    ("####\n15\n", True),
    ("#### x\n", False),  # a heading, not an answer line: a later one may come
    ("#### Step 1: add\n", False),
    ("#### 1. Find the cost\n", False),  # an enumerated heading
    ("#### Step 1: add\n3 + 4 = 7\n#### 7\n", True),
    ("#### 5\n#### 6", True),  # the first answer line wins
    ("<think>#### 5\n", False),  # inside a think section: never read while it is open
    ("<think>#### 5\n</think>", False),
    ("<think>x</think>#### 5\n", True),
    ("so the answer is 5. ", False),  # later text may override the phrase rule
    ("\\boxed{5} ", False),
    ("no marker at all", False),
]
OPTION = [
    ("#### B\n", True),
    ("#### B", False),  # "Bx" would not be a letter answer
    ("#### (b)\n", True),
    ("#### (b", False),
    ("#### 3.\n", True),
    ("#### Bx\n", False),
    ("#### A quick note\n", False),  # a heading
    ("#### B) a balance\n", True),
    ("#### **B**\n", True),
    ("#### ", False),
    ("#### (", False),
    ("The answer is B. ", False),
]


@pytest.mark.parametrize("text, final", NUMERIC)
def test_numeric(text, final):
    assert answer_is_final(text, "numeric") is final


@pytest.mark.parametrize("text, final", OPTION)
def test_option(text, final):
    assert answer_is_final(text, "option") is final


def test_a_prompt_that_opens_a_think_section():
    """R1-style chat templates end the prompt with <think>: the response starts inside it."""
    assert not answer_is_final("Let me add: #### 5\n", "numeric", preamble="<think>")
    assert answer_is_final("hmm</think>\n#### 5\n", "numeric", preamble="<think>")
    assert extract_answer("#### 4\nwait</think>\n#### 5", "numeric", preamble="<think>") == "5"


def test_answer_line_open():
    assert answer_line_open("#### 5")
    assert answer_line_open("x\n####")
    assert not answer_line_open("#### 5\n")
    assert not answer_line_open("no marker")
    assert not answer_line_open("#### Step 1\nmore")


@pytest.mark.parametrize("answer_type", ["numeric", "option"])
def test_a_final_text_keeps_its_answer_whatever_follows(answer_type):
    """Random texts around a marker, each extended many ways: final means the answer never moves."""
    rng = random.Random(0)
    alphabet = list("0123456789,.$- \n\n\n()ABCabcx#*") + ["####", "answer is ", "\\boxed{7}", "<think>", "</think>"]
    tails = [
        "",
        "0",
        "5",
        ".5",
        ",000",
        " 7",
        "\n#### 9",
        "x",
        ")",
        " and 3",
        "\\boxed{2}",
        "A",
        "b ",
        "</think>#### 3\n",
    ]
    checked = 0
    for _ in range(30000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        if not answer_is_final(text, answer_type):
            continue
        checked += 1
        answer = extract_answer(text, answer_type)
        for tail in tails + ["".join(rng.choice(alphabet) for _ in range(5)) for _ in range(5)]:
            assert extract_answer(text + tail, answer_type) == answer, (text, tail)
    assert checked > 100


# --- property: responses shaped like real models' ---------------------------------------------
NUMBERS = st.sampled_from(["15", "1,250", "$1,250.00", "-3", "0.5", "25%", "\\$12", "7.", "18.0", "42"])
LETTERS = st.sampled_from(["B", "(C)", "**D**", "A) iron", "b", "3", "E."])


def _lines(answer):
    prose = st.sampled_from(
        [
            "Tom has 3 + 12 = 15 apples.",
            "Let's think step by step.",
            "So 2 * 1.5 = 3.",
            "The answer is 7.",
            "I am not sure.",
            "Water is a liquid.",
            "",
        ]
    )
    heading = st.sampled_from(
        [
            "#### Step 1: Add the apples",
            "#### 1. Find the cost",
            "#### Final Answer",
            "#### Solution",
            "#### A quick check",
        ]
    )
    return st.one_of(
        prose,
        heading,
        answer.map(lambda a: f"#### {a}"),
        answer.map(lambda a: f"#### **{a}** apples"),
        answer.map(lambda a: f"#### \\boxed{{{a}}}"),
        answer.map(lambda a: f"The final answer is $\\boxed{{{a}}}$."),
        answer.map(lambda a: f"**Answer:** {a}"),
        answer.map(lambda a: f"#### The answer is {a}"),
        st.sampled_from(["<think>", "</think>", "Question: next one?\nAnswer:"]),
    )


@pytest.mark.parametrize("answer_type, answers", [("numeric", NUMBERS), ("option", LETTERS)])
@pytest.mark.parametrize("preamble", ["", "<think>"])
def test_early_stop_never_settles_an_answer_the_finished_response_would_not_give(answer_type, answers, preamble):
    @settings(max_examples=300, deadline=None)
    @given(st.lists(_lines(answers), min_size=1, max_size=8), st.booleans())
    def check(lines, trailing_newline):
        response = "\n".join(lines) + ("\n" if trailing_newline else "")
        finished = extract_answer(response, answer_type, preamble=preamble)
        for cut in range(len(response) + 1):
            if answer_is_final(response[:cut], answer_type, preamble=preamble):
                assert extract_answer(response[:cut], answer_type, preamble=preamble) == finished, (response, cut)
                break

    check()


def test_rollouts_and_continuations_end_at_the_answer_line_on_any_backend():
    """The drivers' contract through the shared scripted backend (no model): a rollout ends where
    its answer line completes, a prompt stop string is cut, and a continuation of a prefix that
    already settles the answer draws nothing."""
    from dataclasses import replace

    import polars as pl
    from fakes import SCRIPT, CharBackend

    from siaflow.answers import response_rules
    from siaflow.generation.backends import Decoding
    from siaflow.generation.rollouts import run_continuations, run_rollouts
    from siaflow.generation.settings import DrawSettings

    backend = CharBackend()
    questions = pl.DataFrame({"question_id": ["q"], "gold": ["7"]})
    rules = response_rules(
        {"answer_type": "numeric"},
        {"template": "{question}", "stop": ["that is"]},
        stop_at_answer=True,
        example_prompt="Q?\n",
    )
    decoding = Decoding(max_new_tokens=200)
    roll = run_rollouts(backend, questions, ["Q?\n"], draw=DrawSettings(decoding, 0, 2), rules=rules)
    assert roll["text"].to_list() == [SCRIPT[3 : SCRIPT.index("#### 7\n") + 7]] * 2
    assert roll["finish_reason"].to_list() == ["answer"] * 2 and roll["correct"].all()
    free = run_rollouts(
        backend, questions, ["Q?\n"], draw=DrawSettings(decoding, 0, 1), rules=replace(rules, answer_final=None)
    )
    assert free["text"][0] == SCRIPT[3 : SCRIPT.index("that is")] and free["finish_reason"][0] == "stop_sequence"
    cont, _ = run_continuations(backend, roll, draw=DrawSettings(decoding, 0, 2, stride=8), rules=rules)
    at_end = cont.filter(pl.col("k") == roll["T"][0])
    assert at_end["n_generated"].to_list() == [0] * at_end.height and (cont["answer"] == "7").all()
