"""What a run drew and how it was made, in one file (rule ``run_summary``): per model and dataset
the questions, rollouts, trajectories and how many were right, the tokens generated and the
seconds the continuation jobs took; and the data files' SHA-256, the model builds, the prompts,
the sampling and the seeds. A study's numbers can then be checked and its cost read off
(``docs/results.md``, "A study on real questions")."""

from __future__ import annotations

import polars as pl

# the rollout columns counts_row reads
SUMMARY_COLUMNS = ["question_id", "trajectory", "answer", "correct", "T"]


def counts_row(rollouts: pl.DataFrame, n_trajectories: int, ledger: dict) -> dict:
    """One model × dataset: ``rollouts`` (every response, trajectories 0..N-1 among them) and the
    summed token ledger of its main-stride continuation shards (original variant)."""
    traj = rollouts.filter(pl.col("trajectory") < n_trajectories)
    return {
        "questions": rollouts["question_id"].n_unique(),
        "rollouts": rollouts.height,
        "rollout_accuracy": rollouts["correct"].mean(),
        "rollout_null": (rollouts["answer"] == "NULL").mean(),
        "mean_T": rollouts["T"].mean(),
        "trajectories": traj.height,
        "correct_trajectories": int(traj["correct"].sum()),
        "incorrect_trajectories": int((~traj["correct"]).sum()),
        "questions_with_a_correct_rollout": int(
            rollouts.group_by("question_id").agg(pl.col("correct").any())["correct"].sum()
        ),
        "rollout_tokens": int(rollouts["T"].sum()),
        "continuation_tokens": int(ledger.get("generated_tokens") or 0),
        "continuation_decoded_tokens": int(ledger.get("decoded_tokens") or 0),
        "continuation_seconds": float(ledger.get("seconds") or 0.0),
    }


def made_with(data_provenance: dict[str, dict], rollout_provenance: dict[str, dict], sampling: dict) -> dict:
    """How the run was made: each dataset's files and SHA-256 (``data_provenance``: dataset →
    prepare_dataset's provenance), each model's weights, build, backend and prompts
    (``rollout_provenance``: "model/dataset" → a rollout shard's provenance), the decoding, the
    sampling and its seeds, and siaflow's version and commit."""
    datasets = {
        name: {"n_questions": p["spec"]["n_questions"], "split": p["spec"].get("split"), **(p.get("source") or {})}
        for name, p in sorted(data_provenance.items())
    }
    models: dict[str, dict] = {}
    for _key, p in sorted(rollout_provenance.items()):
        backend = p.get("backend") or {}
        m = models.setdefault(
            p["model"],
            {
                "path": p.get("model_path"),
                "revision": p.get("revision"),
                "build": (backend.get("extra") or {}).get("build"),
                "backend": backend.get("name"),
                "backend_settings": backend.get("settings"),
                "prompts": {},
            },
        )
        m["prompts"][p["dataset"]] = p.get("prompt_template")
    first = next(iter(rollout_provenance.values()), {})
    return {
        "datasets": datasets,
        "models": models,
        "decoding": first.get("decoding"),
        "sampling": sampling,
        "siaflow_version": first.get("siaflow_version"),
        # the commits the rollout jobs ran (a "-dirty" one had uncommitted changes)
        "siaflow_commits": sorted({str(p.get("siaflow_commit")) for p in rollout_provenance.values()}),
    }


_ROLLOUT_KEYS = ("questions", "rollouts", "rollout_accuracy", "rollout_null", "mean_T")
_ROLLOUT_KEYS += ("questions_with_a_correct_rollout", "rollout_tokens")


def rollout_counts(results: str) -> pl.DataFrame:
    """``counts_row`` of every model × dataset whose rollouts are under ``results`` (their shards,
    whatever else exists: an accuracy pilot draws no continuations)."""
    from glob import glob

    from siaflow import layout

    rows = []
    for model, dataset in sorted(
        {tuple(p.split("/")[-3:-1]) for p in glob(layout.glob(layout.ROLLOUTS, results=results))}
    ):
        shards = sorted(glob(layout.glob(layout.ROLLOUTS, results=results, model=model, dataset=dataset)))
        rollouts = pl.concat([pl.read_parquet(f, columns=SUMMARY_COLUMNS) for f in shards])
        row = counts_row(rollouts, 0, {})
        rows.append({"model": model, "dataset": dataset, **{k: row[k] for k in _ROLLOUT_KEYS}})
    return pl.DataFrame(rows)


if __name__ == "__main__":  # python -m siaflow.outputs.run_summary <results>: the rollouts' counts
    import sys

    from siaflow.outputs.tables import to_markdown

    print(to_markdown(rollout_counts(sys.argv[1]), digits=3), end="")
