"""Files of generations made elsewhere (docs/own-generations.md): read as Parquet or JSONL and
validated row by row, every error naming the file, the row (a JSONL file's line) and the field.

Rollouts: one row per (question_id, trajectory). Continuations: one row per (question_id,
trajectory, k, sample), the empty prefix (k = 0) once per question with trajectory = -1.
Columns the schema does not name are ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl

from siaflow.answers import normalize_gold

# field -> (required, type): "str" (a string), "int", "ints" (a list of integers), "floats"
ROLLOUT_FIELDS = {
    "question_id": (True, "str"),
    "trajectory": (True, "int"),
    "prompt": (True, "str"),
    "response": (False, "str"),
    "token_ids": (False, "ints"),
    "prompt_ids": (False, "ints"),
    "token_logprobs": (False, "floats"),
    "finish_reason": (False, "str"),
    "gold": (False, "str"),
}
CONTINUATION_FIELDS = {
    "question_id": (True, "str"),
    "trajectory": (True, "int"),
    "k": (True, "int"),
    "sample": (True, "int"),
    "continuation": (False, "str"),
    "continuation_ids": (False, "ints"),
    "finish_reason": (False, "str"),
}
FINISH_REASONS = ("stop", "length", "answer", "stop_sequence")
_TYPES = {"str": "a string", "int": "an integer", "ints": "a list of integers", "floats": "a list of numbers"}


class GenerationsError(ValueError):
    """A file of generations that siaflow cannot read as its schema says."""


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_rows(path: str | Path) -> list[tuple[str, dict]]:
    """(where, row) for every row of a .parquet or .jsonl file; ``where`` is ``<file>: row N`` (a
    JSONL file: ``line N``), 1-based. Blank JSONL lines are skipped."""
    path = Path(path)
    if path.suffix == ".parquet":
        try:
            rows = pl.read_parquet(path).to_dicts()
        except Exception as e:  # noqa: BLE001 - any reader failure is the file's
            raise GenerationsError(f"{path}: not a readable Parquet file ({e})") from e
        return [(f"{path}: row {i + 1}", r) for i, r in enumerate(rows)]
    out = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise GenerationsError(f"{path}: line {i + 1}: not JSON ({e.msg})") from e
        if not isinstance(row, dict):
            raise GenerationsError(f"{path}: line {i + 1}: a JSON object is expected, got {type(row).__name__}")
        out.append((f"{path}: line {i + 1}", row))
    return out


def note_extra_fields(path, rows: list[tuple[str, dict]], fields: dict) -> list[str]:
    """The fields of ``path``'s rows that are not in the schema, said once per file: they are
    ignored, and a misspelled optional field (``token_logprob``) must not pass unnoticed."""
    extra = sorted({name for _, row in rows for name in row} - set(fields))
    if extra:
        print(f"{path}: ignoring field(s) not in the schema (docs/own-generations.md): {extra}")
    return extra


def _is(value, kind: str) -> bool:
    def integer(x):
        return isinstance(x, int) and not isinstance(x, bool)

    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return integer(value)
    if kind == "ints":
        return isinstance(value, list) and all(integer(x) and x >= 0 for x in value)
    return isinstance(value, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)


def check_fields(where: str, row: dict, fields: dict) -> dict:
    """The schema's fields of one row (a null optional field is absent), each of its type."""
    out = {}
    for name, (required, kind) in fields.items():
        value = row.get(name)
        if value is None:
            if required:
                raise GenerationsError(f"{where}: field {name!r}: missing (required, {_TYPES[kind]})")
            continue
        if not _is(value, kind):
            raise GenerationsError(f"{where}: field {name!r}: {_TYPES[kind]} is expected, got {value!r:.60}")
        out[name] = value
    if out.get("finish_reason", "stop") not in FINISH_REASONS:
        raise GenerationsError(f"{where}: field 'finish_reason': one of {FINISH_REASONS}, got {out['finish_reason']!r}")
    return out


def _rollout_row(where: str, row: dict, golds: dict, answer_type: str) -> dict:
    r = check_fields(where, row, ROLLOUT_FIELDS)
    if not r["prompt"].strip():
        raise GenerationsError(f"{where}: field 'prompt': empty")
    if r["trajectory"] < 0:
        raise GenerationsError(f"{where}: field 'trajectory': {r['trajectory']} (a trajectory is 0, 1, ...)")
    if "response" not in r and "token_ids" not in r:
        raise GenerationsError(f"{where}: field 'response': missing (give the response's text or its token_ids)")
    if "token_logprobs" in r and len(r["token_logprobs"]) != len(r.get("token_ids", ())):
        raise GenerationsError(f"{where}: field 'token_logprobs': one per token of 'token_ids' is expected")
    q = r["question_id"]
    if q not in golds:
        raise GenerationsError(f"{where}: field 'question_id': {q!r} is not a question of the configured dataset")
    if "gold" in r and normalize_gold(r["gold"], answer_type) != golds[q]:
        raise GenerationsError(f"{where}: field 'gold': {r['gold']!r}, but the dataset's gold of {q!r} is {golds[q]!r}")
    return {**r, "where": where}


def read_rollouts(files: list[str], questions: pl.DataFrame, answer_type: str, n_rollouts: int) -> list[dict]:
    """The rows of rollout ``files``, validated against the dataset's ``questions`` (question_id,
    gold), sorted by question then trajectory: each question of the dataset with trajectories 0,
    1, ... (at least ``n_rollouts``; the first ``n_rollouts`` are kept) and one prompt."""
    golds = dict(zip(questions["question_id"], questions["gold"]))
    rows, seen = [], {}
    for f in files:
        file_rows = read_rows(f)
        note_extra_fields(f, file_rows, ROLLOUT_FIELDS)
        for where, raw in file_rows:
            r = _rollout_row(where, raw, golds, answer_type)
            key = (r["question_id"], r["trajectory"])
            if key in seen:
                raise GenerationsError(
                    f"{where}: fields 'question_id', 'trajectory': duplicate ({key[0]!r}, {key[1]}), first at {seen[key]}"
                )
            seen[key] = where
            rows.append(r)
    by_q: dict[str, list[dict]] = {}
    for r in rows:
        by_q.setdefault(r["question_id"], []).append(r)
    named = ", ".join(map(str, files))
    missing = [q for q in golds if q not in by_q]
    if missing:
        raise GenerationsError(
            f"{named}: no rollouts of {len(missing)} question(s) of the dataset, e.g. {missing[:3]}; bring every "
            "question's, or configure a dataset of the questions you have (datasets.<name>.n_questions, source: local)"
        )
    out = []
    for q in golds:
        group = sorted(by_q[q], key=lambda r: r["trajectory"])
        _check_question(named, q, group, n_rollouts)
        out += group[:n_rollouts]
    return out


def _check_question(named: str, q: str, group: list[dict], n_rollouts: int) -> None:
    indices = [r["trajectory"] for r in group]
    if indices != list(range(len(group))):
        gap = next(i for i, j in enumerate(indices) if i != j)
        raise GenerationsError(f"{named}: question {q!r}: trajectories {indices[:8]} skip {gap}; number them 0, 1, ...")
    if len(group) < n_rollouts:
        raise GenerationsError(
            f"{named}: question {q!r}: {len(group)} trajectories, but the grid reads {n_rollouts} per question "
            "(the larger of sampling.n_trajectories and edis.pool_size): lower them, or bring more"
        )
    for r in group[1:]:
        if r["prompt"] != group[0]["prompt"]:
            raise GenerationsError(
                f"{r['where']}: field 'prompt': differs from the prompt of trajectory 0 of {q!r} "
                f"({group[0]['where']}); a question's trajectories answer one prompt"
            )


def rollout_keys(files: list[str]) -> set[tuple[str, int]]:
    """(question_id, trajectory) of every row of rollout ``files`` (validated by rule rollouts)."""
    return {(r.get("question_id"), r.get("trajectory")) for f in files for _, r in read_rows(f)}


def read_continuations(files: list[str], rollouts: set[tuple[str, int]]) -> list[dict]:
    """The rows of continuation ``files``, each of a known (question_id, trajectory) of the
    rollout files (``rollouts``), the empty prefix (k = 0) with trajectory = -1, no duplicates."""
    questions = {q for q, _ in rollouts}
    rows, seen = [], {}
    for f in files:
        file_rows = read_rows(f)
        note_extra_fields(f, file_rows, CONTINUATION_FIELDS)
        for where, raw in file_rows:
            r = check_fields(where, raw, CONTINUATION_FIELDS)
            q, j, k = r["question_id"], r["trajectory"], r["k"]
            if "continuation" not in r and "continuation_ids" not in r:
                raise GenerationsError(f"{where}: field 'continuation': missing (give its text or continuation_ids)")
            if k < 0 or r["sample"] < 0:
                field = "k" if k < 0 else "sample"
                raise GenerationsError(f"{where}: field {field!r}: {r[field]} is negative")
            if (k == 0) != (j == -1):
                raise GenerationsError(
                    f"{where}: field 'trajectory': {j} at k = {k}; the empty prefix (k = 0) is shared by a question's "
                    "trajectories and given once, with trajectory = -1 (and only it)"
                )
            if q not in questions:
                raise GenerationsError(f"{where}: field 'question_id': {q!r} has no rollouts")
            if j != -1 and (q, j) not in rollouts:
                raise GenerationsError(f"{where}: field 'trajectory': {q!r} has no trajectory {j} in the rollouts")
            key = (q, j, k, r["sample"])
            if key in seen:
                raise GenerationsError(
                    f"{where}: duplicate (question_id, trajectory, k, sample) {key}, first at {seen[key]}"
                )
            seen[key] = where
            rows.append({**r, "where": where})
    return rows
