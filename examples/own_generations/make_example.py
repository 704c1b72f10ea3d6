"""Make a small file of generations "made elsewhere" from the toy world, in the schema of
docs/own-generations.md: responses and continuations sampled with the toy model through siaflow's
transformers backend, then written as plain text (half of them as token ids) with every statistic
dropped, as another engine or an RL pipeline would hand them over. The workflow then imports them
(examples/own_generations/config.yaml): rule rollouts tokenises, reads and scores them again.

    .venv/bin/python examples/own_generations/make_example.py     # writes examples/own_generations/data/
    snakemake --cores 2 --configfile examples/own_generations/config.yaml

It lives here, not in scripts/ (rule entry points only): it is no step of the workflow, it stands
in for whatever made your generations.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TEMPLATE = "Q: {question}\nA: "  # prompts.toy of the config


def make(
    out: Path,
    *,
    model: str = str(ROOT / "resources/toy_models/informative"),
    n_questions: int = 6,
    dataset_seed: int = 123,
    n_trajectories: int = 4,
    n_continuations: int = 6,
    stride: int = 8,
    max_new_tokens: int = 64,
    seed: int = 7,
) -> dict:
    """Write ``rollouts.jsonl`` and ``continuations.jsonl`` into ``out``: ``n_trajectories``
    responses to each of the toy dataset's first ``n_questions`` (seed ``dataset_seed``) and
    ``n_continuations`` continuations of every checkpoint prefix at ``stride``. Returns their
    paths, and the tables siaflow made while sampling them (``sampled``, ``draws``)."""
    from siaflow.answers import response_rules
    from siaflow.generation.backends import Decoding, make_backend
    from siaflow.generation.rollouts import (
        continuation_prefixes,
        continuation_requests,
        draw_from_prefixes,
        run_rollouts,
    )
    from siaflow.generation.settings import DrawSettings
    from siaflow.inputs.datasets import build_prompts, load_dataset

    spec = {"source": "toy", "n_questions": n_questions, "seed": dataset_seed, "answer_type": "numeric"}
    questions = load_dataset("toy-arith", spec)
    backend = make_backend("transformers", model)
    prompts, prompt_ids = build_prompts(backend, TEMPLATE, questions)
    rules = response_rules(spec, TEMPLATE, stop_at_answer=True, example_prompt=prompts[0])
    decoding = Decoding(temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens)
    draw = DrawSettings(decoding, seed, n_trajectories)
    roll = run_rollouts(backend, questions, prompts, draw=draw, rules=rules, prompt_ids=prompt_ids)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"rollouts": out / "rollouts.jsonl", "continuations": out / "continuations.jsonl"}
    with paths["rollouts"].open("w") as f:
        for r in roll.iter_rows(named=True):
            row = {"question_id": r["question_id"], "trajectory": r["trajectory"], "prompt": r["prompt"]}
            # half as text, half as token ids: the importer takes either
            row |= {"token_ids": r["token_ids"]} if r["trajectory"] % 2 else {"response": r["text"]}
            f.write(json.dumps(row) + "\n")
    prefixes = list(continuation_prefixes(roll, stride=stride, seed=seed, variant="original"))
    requests = continuation_requests(prefixes, DrawSettings(decoding, seed, n_continuations, stride=stride))
    draws, gens, _ = draw_from_prefixes(
        backend,
        prefixes,
        requests,
        decoding,
        extract=rules.extract,
        answer_final=rules.answer_final,
        progress=None,
    )
    with paths["continuations"].open("w") as f:
        for (q, j, k, _, _), samples in zip(prefixes, gens):
            for s, g in enumerate(samples):
                row = {"question_id": q, "trajectory": j, "k": k, "sample": s}
                row |= {"continuation_ids": g.token_ids} if s % 2 else {"continuation": backend.decode(g.token_ids)}
                f.write(json.dumps(row) + "\n")
    backend.close()
    return {**paths, "sampled": roll, "draws": draws}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "data")
    args = parser.parse_args()
    made = make(args.out)
    for kind in ("rollouts", "continuations"):
        print(f"{kind}: {made[kind]} ({sum(1 for _ in made[kind].open())} rows)")
