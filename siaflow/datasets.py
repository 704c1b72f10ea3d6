"""Datasets normalised to one table: question_id, question, options, gold, answer_type.

Gold answers are normalised with the same rule as model answers (``siaflow.answers``); a row whose
gold cannot be parsed stops preparation with the dataset and row named: never a silent drop.
"""

from __future__ import annotations

import polars as pl

from siaflow.answers import ANSWER_TYPES, NULL, normalize_gold
from siaflow import toy

SCHEMA = {"question_id": pl.String, "question": pl.String, "options": pl.List(pl.String), "gold": pl.String,
          "answer_type": pl.String}


class DatasetError(ValueError):
    pass


def normalise(rows: list[dict], dataset: str) -> pl.DataFrame:
    """Validate and normalise raw rows; raises ``DatasetError`` naming the dataset and row."""
    seen, out = set(), []
    for i, r in enumerate(rows):
        where = f"dataset {dataset!r}, row {i} (question_id={r.get('question_id')!r})"
        for key in ("question_id", "question", "gold", "answer_type"):
            if r.get(key) in (None, ""):
                raise DatasetError(f"{where}: missing {key}")
        if r["answer_type"] not in ANSWER_TYPES:
            raise DatasetError(f"{where}: answer_type {r['answer_type']!r} is not one of {ANSWER_TYPES}")
        if r["question_id"] in seen:
            raise DatasetError(f"{where}: duplicate question_id")
        seen.add(r["question_id"])
        gold = normalize_gold(str(r["gold"]), r["answer_type"])
        if gold == NULL:
            raise DatasetError(f"{where}: gold answer {r['gold']!r} cannot be parsed as {r['answer_type']}")
        out.append({**r, "gold": gold})
    return pl.DataFrame(out, schema=SCHEMA)


def load_dataset(name: str, spec: dict) -> pl.DataFrame:
    """The normalised table of dataset ``name`` as configured (``config['datasets'][name]``)."""
    if spec["source"] == "toy":
        rows = toy.make_dataset(spec["n_questions"], seed=spec.get("seed", 0))
        rows = [{**r, "answer_type": spec["answer_type"]} for r in rows]
    else:
        raise DatasetError(f"dataset {name!r}: unknown source {spec['source']!r}")
    df = normalise(rows, name)
    if df.height < spec["n_questions"]:
        raise DatasetError(f"dataset {name!r}: config asks for n_questions={spec['n_questions']} but only {df.height} exist")
    return df.head(spec["n_questions"])


def shard_slice(n_questions: int, shard_size: int, shard: int) -> tuple[int, int]:
    """[start, stop) question indices of a shard: fixed slices, so a shard's content never moves."""
    start = shard * shard_size
    if shard < 0 or start >= n_questions:
        raise ValueError(f"shard {shard} is out of range for {n_questions} questions of shard_size {shard_size}")
    return start, min(n_questions, start + shard_size)


def n_shards(n_questions: int, shard_size: int) -> int:
    return -(-n_questions // shard_size)


def render_prompt(template: str, question: str, options: list[str] | None = None) -> str:
    """Fill ``{question}`` (and ``{options}``, lettered A, B, ...) without ``str.format`` so braces
    inside questions are safe."""
    text = template.replace("{question}", question)
    if "{options}" in template:
        opts = "\n".join(f"{'ABCDEFGH'[i]}) {o}" for i, o in enumerate(options or []))
        text = text.replace("{options}", opts)
    return text
