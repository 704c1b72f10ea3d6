"""Forced-answer probes (siaflow.generation.probes): which cue a prefix takes, what a probe asks the
engine for, what it stores, and that a killed probe job resumes."""

import polars as pl
import pytest
from fakes import CharBackend, toy_rollouts

from siaflow.answers import response_rules
from siaflow.generation.backends import Decoding
from siaflow.generation.probes import ProbeSpec, probe_cue, probe_prefix_batch, probe_requests, run_probes
from siaflow.generation.rollouts import continuation_requests
from siaflow.generation.settings import DrawSettings
from siaflow.keys import PROBE_VARIANT

SPEC = ProbeSpec(cue="\n#### ", think_close="\n</think>\n\n", n_samples=3, max_new_tokens=4)


def _cue(text, preamble=""):
    rules = response_rules({"answer_type": "numeric"}, "{question}", stop_at_answer=True, example_prompt=preamble)
    return probe_cue(text, SPEC, answer_type="numeric", preamble=rules.preamble, settled=rules.settled(text))


@pytest.mark.parametrize(
    "prefix,preamble,want",
    [
        ("3 + 4 = 7", "", "\n#### "),  # the plain case
        ("3 + 4 = 7\n#### 7\n", "", ""),  # the answer is settled: nothing to ask
        ("3 + 4 = 7\n#### 1", "", ""),  # the model is writing its answer line: let it finish
        ("#### Step 1: add", "", "\n#### "),  # a markdown heading is no answer line
        ("<think>3 + 4", "", "\n</think>\n\n#### "),  # a think section left open is closed first
        ("3 + 4", "<think>", "\n</think>\n\n#### "),  # ... also when the prompt opened it
        ("3 + 4</think>\nso", "<think>", "\n#### "),  # ... and not when it is closed
    ],
)
def test_the_cue_fits_the_prefix(prefix, preamble, want):
    assert _cue(prefix, preamble) == want


def test_probe_requests_are_short_end_at_the_answer_line_and_draw_their_own_streams():
    prefixes = [("q0", 1, 4, [10, 11, 12, 13, 20, 21], [1, 2])]
    (r,) = probe_requests(prefixes, SPEC, seed=0, stop=("\n\nQuestion:",))
    assert r.prompt_ids == (1, 2, 10, 11, 12, 13, 20, 21) and r.answer_start == 2
    assert r.max_new_tokens == 4 and r.n == 3 and r.stop == ("\n\nQuestion:", "\n")
    (c,) = continuation_requests(prefixes, DrawSettings(Decoding(), seed=0, n_samples=3))
    assert not set(r.keys) & set(c.keys)  # never a full continuation's random stream


def test_probe_answers_are_read_from_prefix_cue_and_sample():
    """The scripted backend continues its script: after "...= 7\n" + cue "#### " it writes "7\n"."""
    backend, ids = CharBackend(), lambda s: [ord(c) for c in s]
    rules = response_rules({"answer_type": "numeric"}, "{question}", stop_at_answer=True, example_prompt="")
    spec = ProbeSpec(cue="#### ", think_close="", n_samples=2, max_new_tokens=4)
    prefixes = [
        ("q", 0, 22, ids("add 3 and 4\n3 + 4 = 7\n#### "), ids("Q?\n")),  # cue appended
        ("q", 0, 29, ids("add 3 and 4\n3 + 4 = 7\n#### 7\n"), ids("Q?\n")),  # settled: no cue, no tokens
    ]
    draw = DrawSettings(Decoding(max_new_tokens=64), seed=0, n_samples=2, variant=PROBE_VARIANT)
    df, ledger = probe_prefix_batch(backend, prefixes, spec, draw=draw, rules=rules)
    assert df["answer"].to_list() == ["7"] * 4 and df["sample"].to_list() == [0, 1, 0, 1]
    assert df["n_generated"].to_list()[2:] == [0, 0] and max(df["n_generated"]) <= 2
    # each sample's own text, for Dynasor's hedge-word check: nothing drawn from a settled prefix
    assert df["text"].to_list()[2:] == ["", ""] and all(t.startswith("7") for t in df["text"][:2])
    assert ledger["probes"] == 4 and ledger["answered_in_prefix"] == 2
    assert ledger["generated_tokens"] == int((df["n_generated"] + df["cut"]).sum())


@pytest.fixture(scope="module")
def toy(tiny_model_dir):
    return toy_rollouts(tiny_model_dir, max_new_tokens=20)


def _probe_draw(dec, seed=0):
    return DrawSettings(dec, seed, SPEC.n_samples, stride=4, variant=PROBE_VARIANT)


def test_run_probes_covers_every_checkpoint_once_and_is_reproducible(toy):
    backend, roll, rules, dec = toy
    df, ledger = run_probes(backend, roll, SPEC, draw=_probe_draw(dec), rules=rules)
    n_ckpt = sum(len(set(range(0, t, 4)) | {t}) - 1 for t in roll["T"]) + roll["question_id"].n_unique()
    assert df.height == n_ckpt * SPEC.n_samples and ledger["prefixes"] == n_ckpt
    assert df.filter(pl.col("k") == 0)["trajectory"].unique().to_list() == [-1]
    assert df["n_generated"].max() <= SPEC.max_new_tokens
    again, _ = run_probes(backend, roll, SPEC, draw=_probe_draw(dec), rules=rules)
    assert again.equals(df)
    other, _ = run_probes(backend, roll, SPEC, draw=_probe_draw(dec, 1), rules=rules)
    assert not other.equals(df)


def test_a_killed_probe_job_resumes_from_its_parts(toy, tmp_path, monkeypatch):
    backend, roll, rules, dec = toy
    out = tmp_path / "probe" / "shard-0.parquet"
    out.parent.mkdir()
    whole, _ = run_probes(backend, roll, SPEC, draw=_probe_draw(dec), rules=rules)
    calls = {"n": 0}
    real = backend.generate

    def dies_after_two(*a, **kw):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt("killed")
        return real(*a, **kw)

    monkeypatch.setattr(backend, "generate", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_probes(backend, roll, SPEC, draw=_probe_draw(dec), rules=rules, output=str(out), part_prefixes=2)
    monkeypatch.setattr(backend, "generate", real)
    seen = {"n": 0}

    def counting(*a, **kw):
        seen["n"] += 1
        return real(*a, **kw)

    monkeypatch.setattr(backend, "generate", counting)
    resumed, _ = run_probes(backend, roll, SPEC, draw=_probe_draw(dec), rules=rules, output=str(out), part_prefixes=2)
    assert resumed.equals(whole)
    n_parts = -(-(whole.height // SPEC.n_samples) // 2)
    assert seen["n"] == n_parts - 2  # the two saved parts were not generated again
