"""Datasets normalised to one table: question_id, question, options, gold, answer_type.

Gold answers are normalised with the same rule as model answers (``siaflow.answers``); a row whose
gold cannot be parsed stops preparation with the dataset and row named: never a silent drop.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from siaflow.answers import ANSWER_TYPES, NULL, normalize_gold
from siaflow.inputs import toy

SCHEMA = {
    "question_id": pl.String,
    "question": pl.String,
    "options": pl.List(pl.String),
    "gold": pl.String,
    "answer_type": pl.String,
}


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


# --------------------------------------------------------------------------------------------
# Hugging Face hub datasets
# --------------------------------------------------------------------------------------------


def fetch_hub_files(spec: dict) -> tuple[list[Path], dict]:
    """Download (or find in the cache) the parquet files of a hub dataset. Uses the hub client's
    cache, so ``HF_HOME`` and ``HF_HUB_OFFLINE`` are honoured. Returns the files and where they
    came from (repo, requested revision, resolved commit, file names)."""
    from huggingface_hub import snapshot_download

    root = Path(
        snapshot_download(
            spec["repo"], repo_type="dataset", revision=spec.get("revision"), allow_patterns=[spec["files"]]
        )
    )
    files = sorted(root.glob(spec["files"]))
    if not files:
        raise DatasetError(
            f"hub dataset {spec['repo']!r} (revision {spec.get('revision') or 'main'}) has no file "
            f"matching {spec['files']!r}"
        )
    source = {
        "repo": spec["repo"],
        "revision": spec.get("revision"),
        "commit": root.name,
        "files": [f.relative_to(root).as_posix() for f in files],
    }
    return files, source


def local_files(spec: dict) -> tuple[list[Path], dict]:
    """The parquet files of a ``source: local`` dataset: a directory laid out as the hub repo it
    stands for (``path``; ``files`` is the same glob as for the hub). Returns the files and where
    they came from (directory, file names, content hashes)."""
    from siaflow.io import sha256_file

    root = Path(spec["path"])
    files = sorted(root.glob(spec["files"]))
    if not files:
        raise DatasetError(f"local dataset directory {str(root)!r} has no file matching {spec['files']!r}")
    source = {
        "path": str(root),
        "files": [f.relative_to(root).as_posix() for f in files],
        "sha256": {f.relative_to(root).as_posix(): sha256_file(f) for f in files},
    }
    return files, source


def _field(row: dict, path: str):
    """A column, or a nested field with a dotted path (``choices.text``)."""
    value = row
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def _template(template: str, row: dict) -> str:
    """``"{Body} {Question}"`` filled from the row's columns (dotted paths allowed)."""
    return re.sub(r"\{([^{}]+)\}", lambda m: str(_field(row, m.group(1))).strip(), template).strip()


def hub_rows(raw: pl.DataFrame, spec: dict, dataset: str) -> list[dict]:
    """Map raw hub rows to the normalised schema with the config's ``fields``; a malformed row
    raises ``DatasetError`` naming the dataset, split and row."""
    fields = spec["fields"]
    split = spec.get("split", "?")
    gold_re = re.compile(fields["gold_regex"], re.S) if fields.get("gold_regex") else None
    rows = []
    for i, r in enumerate(raw.iter_rows(named=True)):
        where = f"dataset {dataset!r} ({spec.get('repo') or spec.get('path')}, split {split}), row {i}"
        try:
            qid = str(_field(r, fields["id"])) if fields.get("id") else f"{dataset}-{i:05d}"
            question = _template(fields["question"], r)
            gold = _field(r, fields["gold"])
        except KeyError as exc:
            raise DatasetError(f"{where}: no field {exc.args[0]!r} (columns: {', '.join(raw.columns)})") from None
        if gold is None or str(gold).strip() == "":
            raise DatasetError(f"{where} (question_id={qid!r}): missing gold answer in field {fields['gold']!r}")
        gold = str(gold)
        if gold_re is not None:
            m = gold_re.search(gold)
            if not m:
                raise DatasetError(
                    f"{where} (question_id={qid!r}): gold {gold[-60:]!r} does not match "
                    f"gold_regex {fields['gold_regex']!r}"
                )
            gold = m.group(1)
        options = None
        if fields.get("options"):
            options = [str(o) for o in _field(r, fields["options"])]
            labels = [str(x) for x in _field(r, fields["option_labels"])] if fields.get("option_labels") else None
            if labels is not None:
                letters = [normalize_gold(x, "option") for x in labels]
                if letters != list("ABCDE"[: len(letters)]):
                    raise DatasetError(
                        f"{where} (question_id={qid!r}): option labels {labels} are not A, B, ... or 1, 2, ..."
                    )
            key = normalize_gold(gold, "option")
            if key == NULL or "ABCDE".index(key) >= len(options):
                raise DatasetError(
                    f"{where} (question_id={qid!r}): answer key {gold!r} is not one of the {len(options)} options"
                )
        rows.append(
            {
                "question_id": qid,
                "question": question,
                "options": options,
                "gold": gold,
                "answer_type": spec["answer_type"],
            }
        )
    return rows


def load_dataset(name: str, spec: dict, raw_files: list[Path] | None = None) -> pl.DataFrame:
    """The normalised table of dataset ``name`` as configured (``config['datasets'][name]``).
    Hub datasets read ``raw_files`` (from ``fetch_hub_files``)."""
    if spec["source"] == "toy":
        rows = toy.make_dataset(spec["n_questions"], seed=spec.get("seed", 0))
        rows = [{**r, "answer_type": spec["answer_type"]} for r in rows]
    elif spec["source"] in ("hub", "local"):
        if raw_files is None:
            raw_files, _ = fetch_hub_files(spec) if spec["source"] == "hub" else local_files(spec)
        raw = pl.concat([pl.read_parquet(f) for f in raw_files], how="vertical_relaxed")
        rows = hub_rows(raw, spec, name)
        name = f"{name} ({spec.get('repo') or spec['path']}, split {spec.get('split', '?')})"
    else:
        raise DatasetError(f"dataset {name!r}: unknown source {spec['source']!r}")
    df = normalise(rows, name)
    if df.height < spec["n_questions"]:
        raise DatasetError(
            f"dataset {name!r}: config asks for n_questions={spec['n_questions']} but only {df.height} exist"
        )
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
        opts = "\n".join(f"{'ABCDEFGH'[i]}) {o}" for i, o in enumerate([] if options is None else list(options)))
        text = text.replace("{options}", opts)
    return text


def prompt_for(model_spec: dict, answer_type: str) -> str:
    """The prompt name a model uses for datasets of ``answer_type``: ``prompt`` is either one name
    or a mapping answer_type -> name."""
    p = model_spec["prompt"]
    return p if isinstance(p, str) else p[answer_type]


def build_prompts(backend, prompt: str | dict, questions: pl.DataFrame) -> tuple[list[str], list[list[int]]]:
    """Prompt texts and token ids for every question. A plain template is tokenised with the
    model's special tokens; ``{template, chat: true, system}`` goes through the model's chat
    template (the saved text is the fully formatted one)."""
    spec = {"template": prompt} if isinstance(prompt, str) else prompt
    texts, ids = [], []
    for q, o in zip(questions["question"], questions["options"]):
        body = render_prompt(spec["template"], q, o)
        if spec.get("chat"):
            messages = [{"role": "system", "content": spec["system"]}] if spec.get("system") else []
            text, tok = backend.encode_chat(messages + [{"role": "user", "content": body}])
        else:
            text, tok = body, backend.encode(body)
        texts.append(text)
        ids.append(tok)
    return texts, ids
