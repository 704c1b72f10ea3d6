"""Hub datasets offline: the test lays out a Hugging Face cache as the hub client writes it (small
parquet files with invented questions) and prepares GSM8K, ARC and SVAMP from it with
HF_HUB_OFFLINE=1, using config/paper.yaml's own dataset definitions. Malformed rows must stop
preparation with the dataset, split and row named."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from siaflow.inputs.datasets import DatasetError, hub_rows, normalise

ROOT = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((ROOT / "config/paper.yaml").read_text())

GSM8K = pl.DataFrame(
    {
        "question": [
            "Tom has 3 apples and buys 4 more. How many apples?",
            "A box holds 1,200 pins. How many in one box?",
            "The temperature is 2 degrees and drops 7. What is it now?",
        ],
        "answer": ["3 + 4 = 7\n#### 7", "One box holds 1,200.\n#### 1,200", "2 - 7 = -5\n#### -5"],
    }
)
ARC = pl.DataFrame(
    {
        "id": ["arc-1", "arc-2", "arc-3"],
        "question": [
            "Which is a liquid at room temperature?",
            "Which planet is closest to the Sun?",
            "What do plants need?",
        ],
        "choices": [
            {"text": ["iron", "water", "salt", "sand"], "label": ["A", "B", "C", "D"]},
            {"text": ["Mars", "Venus", "Mercury", "Earth"], "label": ["1", "2", "3", "4"]},
            {"text": ["light", "plastic", "noise"], "label": ["A", "B", "C"]},
        ],
        "answerKey": ["B", "3", "A"],
    }
)
SVAMP = pl.DataFrame(
    {
        "ID": ["chal-1", "chal-2"],
        "Body": ["Jack had 5 pens and got 3 more.", "A rope of 25 meters is cut in two equal parts."],
        "Question": ["How many pens does Jack have?", "How long is each part?"],
        "Answer": [8.0, 12.5],
    }
)


def make_hub_cache(hf_home: Path, repo: str, files: dict[str, pl.DataFrame], commit: str) -> None:
    """The layout of HF_HOME/hub for a dataset repo: refs/main -> snapshots/<commit>/<files>."""
    base = hf_home / "hub" / ("datasets--" + repo.replace("/", "--"))
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(commit)
    for rel, df in files.items():
        path = base / "snapshots" / commit / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(path)


def prepare_offline(tmp_path, datasets: dict, fixtures: dict):
    hf_home = tmp_path / "hf"
    for repo, (files, commit) in fixtures.items():
        make_hub_cache(hf_home, repo, files, commit)
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["results"] = str(tmp_path / "results")
    cfg["datasets"] = datasets
    del cfg["training_dynamics"]  # it measures on the toy dataset
    cfg["prompts"]["toy"] = "Q: {question}\n{options}\nA: "
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    targets = [str(tmp_path / f"results/data/{d}.parquet") for d in datasets]
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    # download_dataset writes resources/datasets/<name> in the repository; the callers remove it
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "1",
            *targets,
            "--configfile",
            str(cfg_path),
            "--directory",
            str(ROOT),
            "--forcerun",
            "download_dataset",
            "prepare_dataset",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    return res, tmp_path / "results"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub")
    datasets = {
        name: {**PAPER["datasets"][name], "n_questions": n}
        for name, n in (("gsm8k", 3), ("arc-challenge", 3), ("svamp", 2))
    }
    fixtures = {
        "openai/gsm8k": ({"main/test-00000-of-00001.parquet": GSM8K}, "1111aaaa"),
        "allenai/ai2_arc": (
            {"ARC-Challenge/test-00000-of-00001.parquet": ARC, "ARC-Easy/test-00000-of-00001.parquet": ARC.head(1)},
            "2222bbbb",
        ),
        "ChilleD/SVAMP": (
            {"data/test-00000-of-00001.parquet": SVAMP, "data/train-00000-of-00001.parquet": SVAMP.head(1)},
            "3333cccc",
        ),
    }
    res, results = prepare_offline(tmp, datasets, fixtures)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    yield results
    for name in datasets:  # leave no fixture data in the repository's resources/
        import shutil

        shutil.rmtree(ROOT / "resources" / "datasets" / name, ignore_errors=True)


def test_gsm8k_offline(prepared):
    df = pl.read_parquet(prepared / "data/gsm8k.parquet")
    assert df["gold"].to_list() == ["7", "1200", "-5"]
    assert df["question"][0] == GSM8K["question"][0]
    assert df["question_id"].to_list() == ["gsm8k-00000", "gsm8k-00001", "gsm8k-00002"]
    from siaflow.io import read_provenance

    prov = read_provenance(prepared / "data/gsm8k.parquet")
    assert prov["source"]["commit"] == "1111aaaa" and prov["source"]["files"] == ["main/test-00000-of-00001.parquet"]


def test_arc_offline_numeric_keys_and_option_counts(prepared):
    df = pl.read_parquet(prepared / "data/arc-challenge.parquet")
    assert df["gold"].to_list() == ["B", "C", "A"]  # numeric key 3 -> C
    assert df["question_id"].to_list() == ["arc-1", "arc-2", "arc-3"]
    assert [len(o) for o in df["options"]] == [4, 4, 3]
    assert df.height == 3  # the ARC-Easy file of the same repo is not read


def test_svamp_offline_body_plus_question(prepared):
    df = pl.read_parquet(prepared / "data/svamp.parquet")
    assert df["question"][0] == "Jack had 5 pens and got 3 more. How many pens does Jack have?"
    assert df["gold"].to_list() == ["8", "12.5"]
    assert df["question_id"].to_list() == ["chal-1", "chal-2"]


def _spec(name):
    return {**PAPER["datasets"][name]}


def test_gsm8k_gold_without_marker_is_named():
    bad = GSM8K.with_columns(pl.Series("answer", ["3 + 4 = 7\n#### 7", "no marker here", "#### -5"]))
    with pytest.raises(DatasetError, match=r"gsm8k.*openai/gsm8k, split test\), row 1.*gold_regex"):
        hub_rows(bad, _spec("gsm8k"), "gsm8k")


def test_missing_gold_is_named():
    bad = SVAMP.with_columns(pl.Series("Answer", [8.0, None]))
    with pytest.raises(DatasetError, match=r"svamp.*split test\), row 1 .*chal-2.*missing gold"):
        hub_rows(bad, _spec("svamp"), "svamp")


def test_unparsable_number_is_named():
    bad = pl.DataFrame({"ID": ["a", "b"], "Body": ["x", "y"], "Question": ["?", "?"], "Answer": ["8", "twelve"]})
    rows = hub_rows(bad, _spec("svamp"), "svamp")
    with pytest.raises(DatasetError, match=r"svamp \(ChilleD/SVAMP, split test\)'?, row 1 .*'twelve'"):
        normalise(rows, "svamp (ChilleD/SVAMP, split test)")


def test_bad_answer_key_is_named():
    bad = ARC.with_columns(pl.Series("answerKey", ["B", "3", "E"]))  # E: only 3 options
    with pytest.raises(DatasetError, match=r"arc-challenge.*row 2 .*arc-3.*answer key 'E'"):
        hub_rows(bad, _spec("arc-challenge"), "arc-challenge")
    shuffled = ARC.with_columns(
        pl.Series("choices", [{"text": ["a", "b", "c", "d"], "label": ["A", "C", "B", "D"]}] * 3)
    )
    with pytest.raises(DatasetError, match=r"row 0 .*option labels"):
        hub_rows(shuffled, _spec("arc-challenge"), "arc-challenge")


def test_missing_column_is_named():
    with pytest.raises(DatasetError, match=r"row 0: no field 'Body'"):
        hub_rows(SVAMP.drop("Body"), _spec("svamp"), "svamp")


def test_malformed_row_stops_the_workflow_with_its_name(tmp_path):
    bad = GSM8K.with_columns(pl.Series("answer", ["#### 7", "#### seven", "#### -5"]))
    datasets = {"gsm8k": {**PAPER["datasets"]["gsm8k"], "n_questions": 3}}
    res, _ = prepare_offline(tmp_path, datasets, {"openai/gsm8k": ({"main/test-00000-of-00001.parquet": bad}, "4444")})
    import shutil

    shutil.rmtree(ROOT / "resources/datasets/gsm8k", ignore_errors=True)
    assert res.returncode != 0
    log = (tmp_path / "results/logs/prepare_dataset/gsm8k.log").read_text()
    assert "row 1" in log and "'seven'" in log and "split test" in log


def test_paper_grid_dry_run_offline():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--configfile",
            str(ROOT / "config/paper.yaml"),
            "--directory",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    stats = {}
    for line in res.stdout.split("Job stats:")[1].splitlines()[3:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            stats[parts[0]] = int(parts[1])
    shards = -(-1319 // 50) + -(-1172 // 50) + -(-300 // 50)
    assert stats["rollouts"] == 11 * shards
    assert stats["continuations_both_variants"] == 11 * shards  # one stride, original + shuffled in one job
    assert stats["probes"] == 11 * shards  # the forced-answer probes, one job per shard
    # a dataset this module's fixtures already fetched is not fetched again: download_dataset's params
    # are the fetch's keys (repo, revision, files), not n_questions
    missing = [d for d in PAPER["datasets"] if not (ROOT / "resources/datasets" / d).exists()]
    # entropy: original, shuffled and probe of every model x dataset
    assert stats["entropy"] == 11 * 3 * 3 and stats.get("download_dataset", 0) == len(missing)
