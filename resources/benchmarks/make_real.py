"""Writes the real GSM8K and SVAMP test sets, laid out as the hub lays out the datasets that
config/paper.yaml reads (run from the repository root, with clones of the two upstream repositories):

    python resources/benchmarks/make_real.py --gsm8k-repo <grade-school-math clone> --svamp-repo <SVAMP clone>

    resources/benchmarks/gsm8k/main/test-00000-of-00001.parquet   (openai/gsm8k, config main: question, answer)
    resources/benchmarks/svamp/data/test-00000-of-00001.parquet   (ChilleD/SVAMP: ID, Body, Question, Equation,
    resources/benchmarks/svamp/data/train-00000-of-00001.parquet   Answer, Type, question_concat)

Each file is read from its pinned upstream commit (``git show <commit>:<path>``; a clone, bare or
not, will do) and its SHA-256 is checked before anything is written. Beside the parquet files go the
upstream LICENSE text and manifest.json (upstream repository, commit, file and SHA-256; the produced
files' SHA-256; the writer's settings). The writer is pinned (polars, zstd level 3, statistics, one
row group), so a rerun with the same polars version gives byte-identical files; ``--check`` rewrites
into a temporary directory and compares bytes with the committed files instead.

SVAMP's 1,000 problems have no official split. ChilleD/SVAMP splits them 700 train / 300 test
("seed 42, train set ratio 0.7"); its files cannot be downloaded here. The split below shuffles the
1,000 upstream positions with Python's ``random.seed(42); random.shuffle`` and takes the last 300 as
test, each split kept in upstream order. Its 300 test answers have the same multiset as a public copy
of the hub's test answers, but neither the membership item by item nor the hub's row order is
verified: treat it as a reconstruction, not as the hub's split.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent

GSM8K = {
    "name": "gsm8k",
    "stands_for": "openai/gsm8k (config main, split test)",
    "repo": "openai/grade-school-math",
    "commit": "3101c7d5072418e28b9008a6636bde82a006892c",
    "file": "grade_school_math/data/test.jsonl",
    "sha256": "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
    "license": "LICENSE",
}
SVAMP = {
    "name": "svamp",
    "stands_for": "ChilleD/SVAMP (split test; the 700/300 split is reconstructed, see make_real.py)",
    "repo": "arkilpatel/SVAMP",
    "commit": "689d7ccac74b9983a2ac7cc3b264f441b99e7c53",
    "file": "SVAMP.json",
    "sha256": "5be77703a6d891ae476d7c082787ad361392aa02453b132516cdd5f4e7934e3e",
    "license": "LICENSE",
}
SVAMP_SEED, SVAMP_TEST = 42, 300
SVAMP_COLUMNS = ["ID", "Body", "Question", "Equation", "Answer", "Type", "question_concat"]
WRITER = {"compression": "zstd", "compression_level": 3, "statistics": True, "row_group_size": 1 << 20}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_show(repo: Path, commit: str, path: str) -> bytes:
    """One file as committed upstream (works on a bare or a non-bare clone)."""
    try:
        return subprocess.run(
            ["git", "-C", str(repo), "show", f"{commit}:{path}"], check=True, capture_output=True
        ).stdout
    except subprocess.CalledProcessError as exc:
        sys.exit(f"{repo}: cannot read {path} at commit {commit}: {exc.stderr.decode().strip()}")


def upstream(repo: Path, src: dict) -> tuple[bytes, bytes]:
    """The data file and the LICENSE of ``src`` at its pinned commit; the data's SHA-256 is checked."""
    data = git_show(repo, src["commit"], src["file"])
    if sha256(data) != src["sha256"]:
        sys.exit(f"{src['repo']}@{src['commit']}:{src['file']} has SHA-256 {sha256(data)}, expected {src['sha256']}")
    return data, git_show(repo, src["commit"], src["license"])


def gsm8k_frame(data: bytes) -> pl.DataFrame:
    """openai/gsm8k's layout: ``question``, ``answer`` (worked solution ending in ``#### N``), in
    upstream order."""
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    return pl.DataFrame(
        {"question": [r["question"] for r in rows], "answer": [r["answer"] for r in rows]},
        schema={"question": pl.String, "answer": pl.String},
    )


def svamp_answer(value: float) -> str:
    """The hub's Answer text: ``51.0`` upstream is ``"51"``; a non-integer keeps its decimals."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def svamp_split(n: int, seed: int = SVAMP_SEED, n_test: int = SVAMP_TEST) -> tuple[list[int], list[int]]:
    """(train, test) upstream positions: ``random.seed(seed); random.shuffle`` of 0..n-1, the last
    ``n_test`` are test; each split sorted back into upstream order."""
    order = list(range(n))
    random.seed(seed)
    random.shuffle(order)
    return sorted(order[: n - n_test]), sorted(order[n - n_test :])


def svamp_frames(data: bytes) -> dict[str, pl.DataFrame]:
    """ChilleD/SVAMP's layout (``Answer`` as text, ``question_concat`` = Body + " " + Question) for
    the train and test splits."""
    rows = json.loads(data.decode("utf-8"))
    table = {
        "ID": [r["ID"] for r in rows],
        "Body": [r["Body"] for r in rows],
        "Question": [r["Question"] for r in rows],
        "Equation": [r["Equation"] for r in rows],
        "Answer": [svamp_answer(r["Answer"]) for r in rows],
        "Type": [r["Type"] for r in rows],
        "question_concat": [f"{r['Body']} {r['Question']}" for r in rows],
    }
    df = pl.DataFrame(table, schema={c: pl.String for c in SVAMP_COLUMNS})
    train, test = svamp_split(df.height)
    return {"train": df[train], "test": df[test]}


def parquet_bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.write_parquet(buf, **WRITER)
    return buf.getvalue()


def write_dataset(out: Path, src: dict, license_text: bytes, files: dict[str, pl.DataFrame], extra: dict) -> None:
    """The parquet files, LICENSE and manifest.json of one dataset under ``out``."""
    produced = {}
    for rel, df in files.items():
        data = parquet_bytes(df)
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        produced[rel] = {"rows": df.height, "columns": df.columns, "sha256": sha256(data)}
    (out / "LICENSE").write_bytes(license_text)
    manifest = {
        "dataset": src["name"],
        "stands_for": src["stands_for"],
        "upstream": {
            "repository": f"https://github.com/{src['repo']}",
            "commit": src["commit"],
            "file": src["file"],
            "sha256": src["sha256"],
            "license": "MIT",
            "license_sha256": sha256(license_text),
        },
        "files": produced,
        "writer": {"library": "polars", "version": pl.__version__, **WRITER},
        "made_by": "resources/benchmarks/make_real.py",
        **extra,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def make(out_root: Path, gsm8k_repo: Path, svamp_repo: Path) -> None:
    data, lic = upstream(gsm8k_repo, GSM8K)
    write_dataset(out_root / "gsm8k", GSM8K, lic, {"main/test-00000-of-00001.parquet": gsm8k_frame(data)}, {})
    data, lic = upstream(svamp_repo, SVAMP)
    frames = svamp_frames(data)
    split = {
        "split": {
            "method": f"random.seed({SVAMP_SEED}); random.shuffle(positions 0..999); last {SVAMP_TEST} = test; "
            "each split in upstream order",
            "is_hub_split": "not verified: same multiset of test answers as the hub's test split; "
            "membership item by item and row order not checked",
            "test_ids": frames["test"]["ID"].to_list(),
        }
    }
    files = {f"data/{name}-00000-of-00001.parquet": frames[name] for name in ("test", "train")}
    write_dataset(out_root / "svamp", SVAMP, lic, files, split)


def compare(a: Path, b: Path) -> list[str]:
    """Files that differ (or exist on one side only) between two dataset trees."""
    names = {p.relative_to(a) for p in a.rglob("*") if p.is_file()} | {
        p.relative_to(b) for p in b.rglob("*") if p.is_file()
    }
    return sorted(
        str(n)
        for n in names
        if not ((a / n).is_file() and (b / n).is_file() and (a / n).read_bytes() == (b / n).read_bytes())
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gsm8k-repo", type=Path, required=True, help="a clone of github.com/openai/grade-school-math")
    ap.add_argument("--svamp-repo", type=Path, required=True, help="a clone of github.com/arkilpatel/SVAMP")
    ap.add_argument("--out", type=Path, default=HERE, help="where gsm8k/ and svamp/ go (default: beside this script)")
    ap.add_argument("--check", action="store_true", help="rewrite into a temporary directory and compare with --out")
    args = ap.parse_args(argv)
    if not args.check:
        make(args.out, args.gsm8k_repo, args.svamp_repo)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        make(Path(tmp), args.gsm8k_repo, args.svamp_repo)
        differ = [d for name in ("gsm8k", "svamp") for d in compare(Path(tmp) / name, args.out / name)]
    print("identical" if not differ else "differ: " + ", ".join(differ))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
