import pytest

from siaflow.answers import NULL, extract_answer, normalize_number
from siaflow.inputs.datasets import DatasetError, normalise, render_prompt, shard_slice
from siaflow.inputs.toy import make_dataset


@pytest.mark.parametrize(
    "text,want",
    [
        ("55-8=47. 47+7=54. 54+9=63. #### 63", "63"),
        ("#### 1,234", "1234"),
        ("so the answer is $18.00.", "18"),
        ("The answer is -3", "-3"),
        ("#### 4 wait no #### 5", "4"),  # the first #### line is the answer
        ("\\boxed{0.50}", "0.5"),
        ("47+7=54. 54+9=", NULL),  # no marker and no fallback
    ],
)
def test_numeric_extraction_toy_rule(text, want):
    assert extract_answer(text, "numeric", last_number_fallback=False) == want


def test_last_number_fallback_only_when_asked_for():
    assert extract_answer("she has 3 then 12 apples.", "numeric", last_number_fallback=True) == "12"
    assert extract_answer("no numbers here", "numeric", last_number_fallback=True) == NULL
    assert extract_answer("she has 3 then 12 apples.", "numeric") == NULL  # the default: no answer stated


def test_response_rules_read_the_last_number_only_where_the_dataset_asks():
    from siaflow.answers import response_rules

    def rules(spec):
        return response_rules(spec, "{question}", stop_at_answer=True, example_prompt="Q")

    cut = "47+7=54. 54+9="  # a response cut at its budget before its answer line
    assert rules({"answer_type": "numeric"}).extract(cut) == NULL
    assert rules({"answer_type": "numeric", "last_number_fallback": False}).extract(cut) == NULL
    asked = rules({"answer_type": "numeric", "last_number_fallback": True})
    assert asked.extract(cut) == "9" and asked.answer_start(cut) == cut.rindex("9")
    assert asked.reading == {"answer_type": "numeric", "preamble": "", "last_number_fallback": True}


@pytest.mark.parametrize(
    "text,want", [("The answer is (B).", "B"), ("answer: c", "C"), ("I pick 3)", NULL), ("hmm", NULL)]
)
def test_option_extraction(text, want):
    assert extract_answer(text, "option") == want


def test_normalize_number():
    assert normalize_number("18.0") == normalize_number("18") == "18"
    assert normalize_number("$1,000.") == "1000"
    assert normalize_number("abc") == NULL


def test_normalise_rejects_bad_rows_by_name():
    rows = make_dataset(3, seed=1)
    assert normalise(rows, "toy").height == 3
    bad = [dict(r) for r in rows]
    bad[1]["gold"] = "twelve"
    with pytest.raises(DatasetError, match=r"dataset 'toy', row 1 .*toy-00001.*'twelve'"):
        normalise(bad, "toy")
    dup = [rows[0], rows[0]]
    with pytest.raises(DatasetError, match="row 1.*duplicate"):
        normalise(dup, "toy")
    missing = [dict(rows[0], gold=None)]
    with pytest.raises(DatasetError, match="row 0.*missing gold"):
        normalise(missing, "toy")


def test_toy_dataset_is_seeded_and_correct():
    a, b = make_dataset(20, seed=5), make_dataset(20, seed=5)
    assert a == b and a != make_dataset(20, seed=6)
    for r in a:  # the gold is the arithmetic of the question
        nums = [int(t.strip(",.")) for t in r["question"].split() if t.strip(",.").isdigit()]
        verbs = [
            w
            for w in r["question"].replace(",", "").split()
            if w in {"gets", "finds", "buys", "wins", "loses", "eats", "sells", "drops"}
        ]
        total = nums[0] + sum(n if v in {"gets", "finds", "buys", "wins"} else -n for v, n in zip(verbs, nums[1:]))
        assert str(total) == r["gold"]


def test_shards_and_prompts():
    assert shard_slice(10, 4, 0) == (0, 4) and shard_slice(10, 4, 2) == (8, 10)
    with pytest.raises(ValueError):
        shard_slice(10, 4, 3)
    assert render_prompt("Q: {question}\nA: ", "has {x} 5?") == "Q: has {x} 5?\nA: "


def test_option_prompts_from_a_prepared_table():
    """Prompts with {options} from the prepared table itself (a polars list column): every option
    lettered in order. This path failed on polars list cells before any option dataset had run."""
    import polars as pl
    from fakes import CharBackend

    from siaflow.inputs.datasets import SCHEMA, build_prompts

    table = pl.DataFrame(
        [
            {
                "question_id": "q",
                "question": "Which is a liquid?",
                "options": ["iron", "water", "salt"],
                "gold": "B",
                "answer_type": "option",
            }
        ],
        schema=SCHEMA,
    )
    texts, ids = build_prompts(CharBackend(), "Q: {question}\n{options}\nA:", table)
    assert texts == ["Q: Which is a liquid?\nA) iron\nB) water\nC) salt\nA:"] and ids[0][0] == ord("Q")
