"""Generations made elsewhere (docs/own-generations.md): every malformed file is refused naming its
file, row and field; a small file made from the toy world runs through the workflow (EDIS,
selection and, with continuations, Table 1), and what it imports is what siaflow itself made."""

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from conftest import ROOT, tiny_config

from siaflow.answers import ResponseRules
from siaflow.config import ConfigError
from siaflow.generation.imported import continuations_table
from siaflow.inputs.generation_files import GenerationsError, read_continuations, read_rollouts
from siaflow.inputs.generations import check_config, unavailable_targets

QUESTIONS = pl.DataFrame({"question_id": ["q0", "q1"], "gold": ["3", "5"]})


def _row(q="q0", j=0, **kw):
    return {"question_id": q, "trajectory": j, "prompt": "Q: 1+2?\nA: ", "response": " #### 3", **kw}


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _good() -> list[dict]:
    return [_row("q0", 0), _row("q0", 1), _row("q1", 0), _row("q1", 1)]


@pytest.mark.parametrize(
    "change, where, field, words",
    [
        (lambda rows: rows[2].pop("prompt"), "line 3", "'prompt'", "missing"),
        (lambda rows: rows[1].update(trajectory="1"), "line 2", "'trajectory'", "an integer is expected"),
        (lambda rows: rows[0].update(prompt="  "), "line 1", "'prompt'", "empty"),
        (lambda rows: rows[3].update(trajectory=0), "line 4", "'question_id', 'trajectory'", "duplicate"),
        (lambda rows: rows[2].update(question_id="q9"), "line 3", "'question_id'", "'q9' is not a question"),
        (lambda rows: rows[0].update(gold="4"), "line 1", "'gold'", "dataset's gold"),
        (lambda rows: rows[1].pop("response"), "line 2", "'response'", "token_ids"),
        (lambda rows: rows[0].update(token_ids=[1, -2]), "line 1", "'token_ids'", "a list of integers"),
        (lambda rows: rows[1].update(finish_reason="eos"), "line 2", "'finish_reason'", "one of"),
    ],
)
def test_a_bad_rollout_row_is_named_by_file_row_and_field(tmp_path, change, where, field, words):
    rows = _good()
    change(rows)
    path = _jsonl(tmp_path / "r.jsonl", rows)
    with pytest.raises(GenerationsError) as e:
        read_rollouts([path], QUESTIONS, "numeric", 2)
    assert f"{path}: {where}: field" in str(e.value) and field in str(e.value) and words in str(e.value), e.value


def test_parquet_rows_and_set_checks(tmp_path):
    bad = pl.DataFrame([_row("q0", 0), {**_row("q0", 1), "prompt": None}, _row("q1", 0), _row("q1", 1)])
    bad.write_parquet(tmp_path / "r.parquet")
    with pytest.raises(GenerationsError, match=r"r\.parquet: row 2: field 'prompt': missing"):
        read_rollouts([str(tmp_path / "r.parquet")], QUESTIONS, "numeric", 2)
    rows = _good()
    path = _jsonl(tmp_path / "few.jsonl", rows)
    with pytest.raises(GenerationsError, match=r"question 'q0': 2 trajectories, but the grid reads 3"):
        read_rollouts([path], QUESTIONS, "numeric", 3)
    with pytest.raises(GenerationsError, match=r"no rollouts of 1 question\(s\) of the dataset, e.g. \['q1'\]"):
        read_rollouts([_jsonl(tmp_path / "q0.jsonl", rows[:2])], QUESTIONS, "numeric", 2)
    ok = read_rollouts([path], QUESTIONS, "numeric", 2)
    assert [(r["question_id"], r["trajectory"]) for r in ok] == [("q0", 0), ("q0", 1), ("q1", 0), ("q1", 1)]


def test_fields_outside_the_schema_are_named_not_silently_dropped(tmp_path, capsys):
    rows = [{**r, "reward": 1.0} for r in _good()]
    rows[2]["token_logprob"] = [-0.5]  # a misspelled optional field
    path = _jsonl(tmp_path / "r.jsonl", rows)
    assert len(read_rollouts([path], QUESTIONS, "numeric", 2)) == 4
    assert f"{path}: ignoring field(s) not in the schema (docs/own-generations.md): ['reward', 'token_logprob']" in (
        capsys.readouterr().out
    )
    read_rollouts([_jsonl(tmp_path / "ok.jsonl", _good())], QUESTIONS, "numeric", 2)
    assert "ignoring" not in capsys.readouterr().out


class _Chars:
    """A character tokenizer standing in for a backend."""

    def encode_text(self, text):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(map(chr, ids))


def _draws(tmp_path, rows):
    keys = {("q0", 0)}
    path = _jsonl(tmp_path / "c.jsonl", rows)
    roll = pl.DataFrame({"question_id": ["q0"], "trajectory": [0], "token_ids": [[ord(c) for c in "ab #### 3"]]})
    got = read_continuations([path], keys)
    rules = ResponseRules(lambda t: t[-1])
    return continuations_table(_Chars(), got, roll, rules=rules, stride=4, n_continuations=2, files=[path]), path


def test_continuations_are_checked_against_their_rollouts(tmp_path):
    c = [{"question_id": "q0", "trajectory": -1, "k": 0, "sample": s, "continuation": "x 3"} for s in range(2)]
    c += [
        {"question_id": "q0", "trajectory": 0, "k": k, "sample": s, "continuation": "3"}
        for k in (4, 8, 9)
        for s in (0, 1)
    ]
    (df, ledger), _ = _draws(tmp_path, c)
    assert df.height == 8 and ledger["prefixes"] == 4 and df["answer"].to_list() == ["3"] * 8
    cases = [
        ({**c[2], "trajectory": 5}, "line 3: field 'trajectory': 'q0' has no trajectory 5"),
        ({**c[2], "k": 12}, "line 3: field 'k': 12 is beyond the response of trajectory 0 (9 tokens)"),
        ({**c[2], "k": 5}, "line 3: field 'k': 5 is not a checkpoint of the main stride 4"),
        ({**c[2], "trajectory": -1}, "line 3: field 'trajectory': -1 at k = 4"),
        ({**c[2], "sample": 2}, "line 3: field 'sample': 2, but sampling.n_continuations is 2"),
        ({**c[2], "question_id": "q7"}, "line 3: field 'question_id': 'q7' has no rollouts"),
        (c[3], "line 4: duplicate (question_id, trajectory, k, sample)"),
        ({k: v for k, v in c[2].items() if k != "continuation"}, "line 3: field 'continuation': missing"),
    ]
    for bad, words in cases:
        with pytest.raises(GenerationsError) as e:
            _draws(tmp_path, [*c[:2], bad, *c[3:]])
        assert words in str(e.value), (words, str(e.value))
    with pytest.raises(GenerationsError, match=r"trajectory 0, k = 8: 0 draws of the 2"):
        _draws(tmp_path, [r for r in c if r["k"] != 8])


def test_config_errors_name_the_key(tmp_path):
    cfg, _ = tiny_config(tmp_path)
    files = _jsonl(tmp_path / "r.jsonl", _good())
    cfg["models"] = {
        "own": {"path": "x", "regime": "sft", "prompt": "toy", "generations": {"toy-arith": {"rollouts": files}}}
    }
    check_config(cfg)
    for change, words in [
        (lambda m: m.update(backend="vllm"), "models.own.backend"),
        (lambda m: m["generations"].update(other={"rollouts": files}), "models.own.generations.other: not a key"),
        (lambda m: m["generations"]["toy-arith"].update(rollouts=[files, "nope.jsonl"]), "rollouts[1]: no such file"),
        (lambda m: m["generations"]["toy-arith"].update(continuations="c.csv"), "neither a .parquet nor a .jsonl"),
    ]:
        bad = json.loads(json.dumps(cfg))
        change(bad["models"]["own"])
        with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
            check_config(bad)
    left = unavailable_targets(cfg, ["table1_alignment", "table_edis_bestofn", "table2_shuffle"])
    assert set(left) == {"table1_alignment", "table2_shuffle"}


def _example():
    spec = importlib.util.spec_from_file_location("make_example", ROOT / "examples/own_generations/make_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_imported_generations_run_through_the_workflow(tmp_path):
    t0 = time.time()
    cfg, _ = tiny_config(tmp_path)
    n, N, K, stride = 4, 3, 4, 8
    made = _example().make(tmp_path / "own", n_questions=n, n_trajectories=N, n_continuations=K, stride=stride)
    cfg["datasets"]["toy-arith"]["n_questions"] = n
    cfg["sampling"].update(n_trajectories=N, n_continuations=K, strides=[stride], shard_size=2)
    cfg["edis"].update(pool_size=N, n_values=[2, 3])
    cfg["selection"]["n_values"] = [2, 3]
    own = {"rollouts": str(made["rollouts"])}
    cfg["models"] = {"own": {**cfg["models"]["toy-sft"], "generations": {"toy-arith": own}}}
    cfg["models"]["own"].pop("toy")
    cfg.pop("training_dynamics")  # it replays the toy models' training
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(ROOT)]

    # without continuations: `all` leaves the SIA targets out, and asking for one says why
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(cfg))
    dry = subprocess.run([*cmd, "-n", "all", "--configfile", str(bare)], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "table_edis_bestofn" in dry.stdout and "table1_alignment" not in dry.stdout
    asked = subprocess.run(
        [*cmd, "-n", "table1_alignment", "--configfile", str(bare)], capture_output=True, text=True, timeout=120
    )
    assert asked.returncode != 0 and "needs continuations of checkpoint prefixes" in asked.stdout + asked.stderr

    own["continuations"] = str(made["continuations"])
    full = tmp_path / "full.yaml"
    full.write_text(yaml.safe_dump(cfg))
    targets = ["table1_alignment", "table_edis_bestofn", "table_selection"]
    res = subprocess.run([*cmd, *targets, "--configfile", str(full)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    r = Path(cfg["results"])
    for t in targets:
        assert (r / f"tables/{t}.csv").stat().st_size > 0
    assert pl.read_csv(r / "tables/table1_alignment.csv")["n_total"].to_list() == [n * N]
    _check_imported(r, cfg, made)
    print(f"imported generations through the workflow: {time.time() - t0:.0f} s")


def _check_imported(r: Path, cfg: dict, made: dict) -> None:
    """The imported tables hold what siaflow made while sampling the files: the same tokens,
    answers and answer starts, per-token statistics of the scoring pass, and the same draws."""
    from siaflow.generation.backends import Decoding, make_backend
    from siaflow.generation.backends.scoring import score_responses
    from siaflow.generation.rollouts import TOKEN_STATS
    from siaflow.io import read_provenance

    keys = ["question_id", "trajectory"]
    roll = pl.read_parquet(r / "rollouts/own/toy-arith/*.parquet").sort(keys)
    sampled = made["sampled"].sort(keys)
    for c in ("token_ids", "prompt_ids", "T", "text", "answer", "answer_start", "correct"):
        assert roll[c].to_list() == sampled[c].to_list(), c
    scorer = make_backend("transformers", cfg["models"]["own"]["path"])
    scored = score_responses(
        scorer, roll["prompt_ids"].to_list(), roll["token_ids"].to_list(), Decoding(**cfg["decoding"])
    )
    for column, name in [
        ("token_logprobs", "logprobs"),
        ("token_entropy", "entropies"),
        ("token_confidence", "confidence"),
    ]:
        for got, want in zip(roll[column].to_list(), scored):
            assert got == pytest.approx(getattr(want, name), abs=1e-4), column
    assert all(roll[c].null_count() == 0 for c in TOKEN_STATS)
    prov = read_provenance(r / "rollouts/own/toy-arith/shard-0.parquet")
    assert prov["imported_rollouts"]["files"][0]["sha256"] and prov["token_stats"]["entropy_kind"] == "exact"
    draws = pl.read_parquet(r / "continuations/own/toy-arith/stride-8/original/*.parquet")
    want = made["draws"].select("question_id", "trajectory", "k", "sample", "answer", "n_generated")
    got = draws.select(want.columns).cast(want.schema)
    assert got.sort(got.columns).equals(want.sort(want.columns))
