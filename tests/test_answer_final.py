"""`answer_is_final` may stop generation only where no continuation can change the answer."""

import random

import pytest

from siaflow.answers import answer_is_final, extract_answer

# texts, whether they are final, for each answer type
NUMERIC = [
    ("47+7=54. #### 54\n", True),
    ("#### 54 apples", True),
    ("#### 54", False),           # 540 may follow
    ("#### 54.", False),          # 54.5 may follow
    ("#### 1,2", False),          # 1,234 may follow
    ("#### 1,234 ", True),
    ("#### $", False),
    ("#### -", False),
    ("#### ", False),
    ("####\n", False),            # the number may be on the next line
    ("#### x", True),             # a marker with no number: NULL, whatever follows
    ("#### 5\n#### 6", True),     # the first marker wins
    ("so the answer is 5. ", False),  # later text may override the phrase rule
    ("\\boxed{5} ", False),
    ("no marker at all", False),
]
OPTION = [
    ("#### B\n", True),
    ("#### B", False),            # "Bx" would not be a letter answer
    ("#### (b)", True),
    ("#### (b", False),
    ("#### 3.", True),
    ("#### Bx", True),            # NULL for good
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


@pytest.mark.parametrize("answer_type", ["numeric", "option"])
def test_a_final_text_keeps_its_answer_whatever_follows(answer_type):
    """Random texts around a marker, each extended many ways: final means the answer never moves."""
    rng = random.Random(0)
    alphabet = list("0123456789,.$- \n()ABCabcx#") + ["####", "answer is ", "\\boxed{7}"]
    tails = ["", "0", "5", ".5", ",000", " 7", "\n#### 9", "x", ")", " and 3", "\\boxed{2}", "A", "b "]
    checked = 0
    for _ in range(4000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        if not answer_is_final(text, answer_type):
            continue
        checked += 1
        answer = extract_answer(text, answer_type)
        for tail in tails + ["".join(rng.choice(alphabet) for _ in range(5)) for _ in range(5)]:
            assert extract_answer(text + tail, answer_type) == answer, (text, tail)
    assert checked > 300
