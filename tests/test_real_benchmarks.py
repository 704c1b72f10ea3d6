"""The real GSM8K and SVAMP test sets in resources/benchmarks/ (made by make_real.py from the
upstream repositories): their hashes match the manifests, their schemas are the hub's, they load
through the hub path's own field mapping with config/paper.yaml's dataset entries (as ``source:
local``, and from a Hugging Face cache laid out over the committed files), every gold normalises,
and the first questions' prompts are rendered as paper.yaml specifies."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from siaflow.answers import NULL
from siaflow.inputs.datasets import DatasetError, build_prompts, hub_rows, load_dataset, normalise, render_prompt
from siaflow.io import sha256_file

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "resources/benchmarks"
PAPER = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
FILES = {"gsm8k": "main/test-00000-of-00001.parquet", "svamp": "data/test-00000-of-00001.parquet"}
SVAMP_COLUMNS = ["ID", "Body", "Question", "Equation", "Answer", "Type", "question_concat"]


def local_spec(name: str) -> dict:
    """paper.yaml's entry unchanged but for where the files are."""
    return {**PAPER["datasets"][name], "source": "local", "path": str(BENCH / name)}


@pytest.fixture(scope="module")
def loaded():
    return {name: load_dataset(name, local_spec(name)) for name in FILES}


def _make_real():
    spec = importlib.util.spec_from_file_location("make_real", BENCH / "make_real.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(FILES))
def test_manifest_hashes_match_the_committed_files(name):
    manifest = json.loads((BENCH / name / "manifest.json").read_text())
    assert manifest["files"] and FILES[name] in manifest["files"]
    for rel, entry in manifest["files"].items():
        path = BENCH / name / rel
        assert sha256_file(path) == entry["sha256"], rel
        assert pl.read_parquet(path).height == entry["rows"]
    assert sha256_file(BENCH / name / "LICENSE") == manifest["upstream"]["license_sha256"]
    assert (BENCH / name / "LICENSE").read_text().startswith("MIT License")
    made = _make_real()
    src = {"gsm8k": made.GSM8K, "svamp": made.SVAMP}[name]
    assert manifest["upstream"]["commit"] == src["commit"] and manifest["upstream"]["sha256"] == src["sha256"]
    assert manifest["writer"]["library"] == "polars"


def test_gsm8k_has_the_hub_schema():
    raw = pl.read_parquet(BENCH / "gsm8k" / FILES["gsm8k"])
    assert raw.schema == pl.Schema({"question": pl.String, "answer": pl.String})
    assert raw.height == 1319 and raw["answer"].str.contains(r"####\s*\S").all()


def test_svamp_has_the_hub_schema_and_a_700_300_split():
    test = pl.read_parquet(BENCH / "svamp" / FILES["svamp"])
    train = pl.read_parquet(BENCH / "svamp/data/train-00000-of-00001.parquet")
    assert test.columns == SVAMP_COLUMNS == train.columns
    assert all(dtype == pl.String for dtype in test.dtypes)
    assert (test.height, train.height) == (300, 700)
    ids = set(test["ID"]) | set(train["ID"])
    assert ids == {f"chal-{i}" for i in range(1, 1001)} and not set(test["ID"]) & set(train["ID"])
    # the split is make_real.py's: random.seed(42); random.shuffle of the upstream positions
    _, positions = _make_real().svamp_split(1000)
    assert test["ID"].to_list() == [f"chal-{i + 1}" for i in positions]
    manifest = json.loads((BENCH / "svamp/manifest.json").read_text())
    assert manifest["split"]["test_ids"] == test["ID"].to_list()
    assert (test["question_concat"] == test["Body"] + " " + test["Question"]).all()


def test_every_gold_normalises(loaded):
    gsm8k, svamp = loaded["gsm8k"], loaded["svamp"]
    assert (gsm8k.height, svamp.height) == (1319, 300)
    for df in (gsm8k, svamp):
        assert df["gold"].null_count() == 0 and not (df["gold"] == NULL).any()
        assert df["gold"].str.contains(r"^-?\d+(\.\d+)?$").all()
        assert df["question_id"].n_unique() == df.height
    assert gsm8k["gold"].head(3).to_list() == ["18", "3", "70000"]
    assert gsm8k["question_id"].head(2).to_list() == ["gsm8k-00000", "gsm8k-00001"]
    assert svamp["question_id"].head(2).to_list() == ["chal-1", "chal-4"]
    assert svamp["gold"].head(3).to_list() == ["51", "22", "3"]
    # paper.yaml's "{Body} {Question}" is the hub's question_concat
    raw = pl.read_parquet(BENCH / "svamp" / FILES["svamp"])
    assert svamp["question"].to_list() == raw["question_concat"].to_list()


def test_upstream_float_answer_reads_as_an_integer():
    """SVAMP.json's Answer is a float (51.0); the same row read with paper.yaml's fields gives 51."""
    raw = pl.read_parquet(BENCH / "svamp" / FILES["svamp"]).head(2)
    as_float = raw.with_columns(pl.col("Answer").cast(pl.Float64))
    assert as_float["Answer"].to_list()[0] == 51.0
    rows = hub_rows(as_float, PAPER["datasets"]["svamp"], "svamp")
    assert normalise(rows, "svamp")["gold"].to_list() == ["51", "22"]
    assert _make_real().svamp_answer(51.0) == "51"


def test_a_gold_that_does_not_normalise_is_named_with_its_id():
    raw = pl.read_parquet(BENCH / "svamp" / FILES["svamp"])
    bad = raw.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("n/a")).otherwise("Answer").alias("Answer"))
    rows = hub_rows(bad, PAPER["datasets"]["svamp"], "svamp")
    qid = raw["ID"][3]
    with pytest.raises(DatasetError, match=rf"svamp.*row 3 \(question_id='{qid}'\): gold answer 'n/a'"):
        normalise(rows, "svamp (ChilleD/SVAMP, split test)")
    gsm = pl.read_parquet(BENCH / "gsm8k" / FILES["gsm8k"])
    bad = gsm.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("#### five")).otherwise("answer").alias("answer")
    )
    with pytest.raises(DatasetError, match=r"row 5 \(question_id='gsm8k-00005'\): gold answer 'five'"):
        normalise(hub_rows(bad, PAPER["datasets"]["gsm8k"], "gsm8k"), "gsm8k")


HUB_LOAD = """
import json, sys
import yaml
from siaflow.inputs.datasets import fetch_hub_files, load_dataset
paper = yaml.safe_load(open("config/paper.yaml"))
out = {}
for name in ("gsm8k", "svamp"):
    spec = paper["datasets"][name]
    files, source = fetch_hub_files(spec)
    load_dataset(name, spec, files).write_parquet(f"{sys.argv[1]}/{name}.parquet")
    out[name] = source
print(json.dumps(out))
"""


def test_the_hub_path_reads_them_from_a_hub_cache(tmp_path, loaded):
    """A Hugging Face cache laid out as the hub client writes it (refs/main -> snapshots/<commit>),
    its snapshot files linking to the committed parquet files; read offline with paper.yaml's
    hub entries, unchanged."""
    hf_home = tmp_path / "hf"
    for name, commit in (("gsm8k", "aaaa1111"), ("svamp", "bbbb2222")):
        base = hf_home / "hub" / ("datasets--" + PAPER["datasets"][name]["repo"].replace("/", "--"))
        (base / "refs").mkdir(parents=True)
        (base / "refs/main").write_text(commit)
        for rel in json.loads((BENCH / name / "manifest.json").read_text())["files"]:
            (base / "snapshots" / commit / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / "snapshots" / commit / rel).symlink_to(BENCH / name / rel)
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(
        [sys.executable, "-c", HUB_LOAD, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-3000:]
    sources = json.loads(res.stdout)
    assert sources["gsm8k"]["files"] == [FILES["gsm8k"]] and sources["gsm8k"]["commit"] == "aaaa1111"
    assert sources["svamp"]["files"] == [FILES["svamp"]]  # the train file of the same repo is not read
    for name in FILES:
        assert pl.read_parquet(tmp_path / f"{name}.parquet").equals(loaded[name])


FEWSHOT_GSM8K_FIRST = """\
Solve the problem step by step. Finish with the final answer on its own line as "#### <number>".

Question: A baker fills 4 trays with 12 rolls each and sells 30 rolls. How many rolls are left?
Answer: The baker makes 4 * 12 = 48 rolls. After selling 30, 48 - 30 = 18 rolls are left.
#### 18

Question: Mia reads 15 pages a day for 6 days and then 10 more pages. How many pages does she read in all?
Answer: In 6 days she reads 15 * 6 = 90 pages. Adding 10 pages gives 90 + 10 = 100 pages.
#### 100

Question: Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins \
for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh \
duck egg. How much in dollars does she make every day at the farmers' market?
Answer:"""

CHAT_SVAMP_FIRST = """\
Solve the following problem step by step. End your response with the final answer on its own line in the \
form "#### <number>".

Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack How much do you have \
to pay to buy each pack?"""

CHAT_GSM8K_SECOND = """\
Solve the following problem step by step. End your response with the final answer on its own line in the \
form "#### <number>".

A robe takes 2 bolts of blue fiber and half that much white fiber.  How many bolts in total does it take?"""


class _Backend:
    """Records what a chat template would be given; plain prompts are tokenised as characters."""

    def encode(self, text):
        return [ord(c) for c in text]

    def encode_chat(self, messages):
        text = json.dumps(messages)
        return text, self.encode(text)


def test_first_prompts_are_rendered_as_paper_yaml_specifies(loaded):
    prompts = PAPER["prompts"]
    gsm8k, svamp = loaded["gsm8k"], loaded["svamp"]
    assert render_prompt(prompts["fewshot_math"]["template"], gsm8k["question"][0]) == FEWSHOT_GSM8K_FIRST
    texts, ids = build_prompts(_Backend(), prompts["fewshot_math"], gsm8k.head(1))
    assert texts == [FEWSHOT_GSM8K_FIRST] and ids[0] == [ord(c) for c in FEWSHOT_GSM8K_FIRST]
    # chat prompts: the rendered text is the one user message the model's chat template receives
    texts, _ = build_prompts(_Backend(), prompts["chat_math"], svamp.head(1))
    assert json.loads(texts[0]) == [{"role": "user", "content": CHAT_SVAMP_FIRST}]
    assert render_prompt(prompts["chat_math"]["template"], gsm8k["question"][1]) == CHAT_GSM8K_SECOND
