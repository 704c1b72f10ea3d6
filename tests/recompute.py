"""Independent recomputation of the workflow's numbers from its raw draws, shared by the end-to-end
tests of the toy world (test_end_to_end.py) and of a real model (test_real_model.py)."""

import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from siaflow.analysis.estimators import alignment_coefficient, conditional_answer_entropy, gold_surprisal
from siaflow.keys import checkpoint_positions


def draws_by_checkpoint(cont: pl.DataFrame) -> dict:
    """(question, trajectory, k) -> the extracted answers of its K draws, in sample order."""
    draws = defaultdict(list)
    for q, j, k, a in cont.sort("sample").select("question_id", "trajectory", "k", "answer").iter_rows():
        draws[(q, j, k)].append(a)
    return draws


def check_entropy_table(
    results: Path, cfg: dict, model: str, dataset: str, stride: int, variant: str = "original"
) -> None:
    """The entropy table of (model, dataset, stride, variant) equals H_k and S_k recomputed from the
    raw continuation draws, with one row per checkpoint of every trajectory and k = 0 drawn once
    per question."""
    K, alpha, n = cfg["sampling"]["n_continuations"], cfg["estimation"]["alpha"], cfg["sampling"]["n_trajectories"]
    roll = pl.read_parquet(results / f"rollouts/{model}/{dataset}/*.parquet").filter(pl.col("trajectory") < n)
    cont = pl.read_parquet(results / f"continuations/{model}/{dataset}/stride-{stride}/{variant}/*.parquet")
    ent = pl.read_parquet(results / f"entropy/{model}/{dataset}/stride-{stride}/{variant}.parquet")
    assert set(cont["trajectory"]) <= {-1, *range(n)}
    assert ent.height == sum(len(checkpoint_positions(t, stride)) for t in roll["T"])
    draws = draws_by_checkpoint(cont)
    assert all(len(v) == K for v in draws.values())
    assert sum(1 for (_, j, _) in draws if j == -1) == roll["question_id"].n_unique()  # k = 0 once per question
    starts = {(r["question_id"], r["trajectory"]): r["answer_start"] for r in roll.iter_rows(named=True)}
    for row in ent.iter_rows(named=True):
        d = draws[(row["question_id"], -1 if row["k"] == 0 else row["trajectory"], row["k"])]
        assert row["H"] == pytest.approx(conditional_answer_entropy(d), abs=1e-12)
        assert row["S"] == pytest.approx(gold_surprisal(d, row["gold"], alpha=alpha)[0])
        assert row["c_gold"] == d.count(row["gold"])
        assert row["before_answer"] == before_answer(
            row["k"], row["T"], starts[(row["question_id"], row["trajectory"])]
        )
    # correctness of a rollout is its own extracted answer against gold
    assert (roll["correct"] == (roll["answer"] == roll["gold"])).all()


def before_answer(k: int, T: int, answer_start: int | None) -> bool:
    """A checkpoint before the final answer begins: k < T, and k <= the answer's first token."""
    return k < T and (answer_start is None or k <= answer_start)


def check_table1(results: Path, cfg: dict, datasets: list[str], stride: int) -> None:
    """Table 1's row of every model x dataset recomputed from its entropy table: both rho (every
    checkpoint; before the answer begins, from the rollouts' answer_start) with their reasons."""
    table = pl.read_csv(results / "tables/table1_alignment.csv")
    for model in cfg["models"]:
        for dataset in datasets:
            ent = pl.read_parquet(results / f"entropy/{model}/{dataset}/stride-{stride}/original.parquet").sort("k")
            roll = pl.read_parquet(results / f"rollouts/{model}/{dataset}/*.parquet")
            starts = {(r["question_id"], r["trajectory"]): r["answer_start"] for r in roll.iter_rows(named=True)}
            rhos, pres, splits, split_pres, correct, unseen = [], [], [], [], [], 0
            for (q, j), part in ent.group_by("question_id", "trajectory"):
                rho, why = alignment_coefficient(part["H"], part["S"], part["c_gold"])
                rhos.append(rho)
                unseen += why == "gold_unseen"
                pre = part.filter([before_answer(k, t, starts[(q, j)]) for k, t in zip(part["k"], part["T"])])
                pres.append(alignment_coefficient(pre["H"], pre["S"], pre["c_gold"])[0])
                splits.append(alignment_coefficient(part["H_a"], part["S_b"], part["c_gold_b"])[0])
                split_pres.append(alignment_coefficient(pre["H_a"], pre["S_b"], pre["c_gold_b"])[0])
                correct.append(part["correct"][0])
            rhos, pres, splits, correct = np.array(rhos), np.array(pres), np.array(splits), np.array(correct)
            ok, ok_pre = ~np.isnan(rhos), ~np.isnan(pres)
            row = table.filter((pl.col("model") == model) & (pl.col("dataset") == dataset)).row(0, named=True)
            assert row["n_total"] == len(rhos)
            assert (row["n_defined"], row["n_pre_defined"], row["n_gold_unseen"]) == (ok.sum(), ok_pre.sum(), unseen)
            assert row["accuracy"] == pytest.approx(correct.mean())
            for name, values, defined in (("rho", rhos, ok), ("rho_pre", pres, ok_pre)):
                if defined.sum():
                    assert row[f"mean_{name}"] == pytest.approx(values[defined].mean())
                if (defined & correct).sum():
                    assert row[f"mean_{name}_correct"] == pytest.approx(values[defined & correct].mean())
                if (defined & ~correct).sum():
                    assert row[f"mean_{name}_incorrect"] == pytest.approx(values[defined & ~correct].mean())
            for name, values in (("split", splits), ("split_pre", np.array(split_pres))):
                defined = ~np.isnan(values)
                assert row[f"n_{name}_defined"] == defined.sum()
                if defined.sum():
                    assert row[f"mean_rho_{name}"] == pytest.approx(values[defined].mean())
            assert row["regime"] == cfg["models"][model]["regime"]


# --------------------------------------------------------------------------------------------
# Probes and early exit (table_probe_agreement, table_early_exit), from the raw draws
# --------------------------------------------------------------------------------------------


def _draw_tokens(row: dict) -> int:
    """What one stored draw generated: its tokens, plus the stop token or the stop string's tokens."""
    return row["n_generated"] + (row["finish_reason"] == "stop") + row["cut"]


def _mode(answers: list[str]) -> str:
    """The most frequent answer, ties to the smallest answer text (the entropy table's MAP answer)."""
    counts = Counter(answers)
    return min(counts, key=lambda a: (-counts[a], a))


def raw_checkpoints(results: Path, cfg: dict, model: str, dataset: str, stride: int) -> list[dict]:
    """Every trajectory (the first N) with, per checkpoint k of {0, s, 2s, ...} ∪ {T}: the answers
    of its full continuations and of its probes (k = 0: the question's shared draws), and the tokens
    each generated. Read from the parquet files alone."""
    n = cfg["sampling"]["n_trajectories"]
    roll = pl.read_parquet(results / f"rollouts/{model}/{dataset}/*.parquet").filter(pl.col("trajectory") < n)
    draws, tokens = {}, {}
    for variant, tag in (("original", "full"), ("probe", "probe")):
        cont = pl.read_parquet(results / f"continuations/{model}/{dataset}/stride-{stride}/{variant}/*.parquet")
        draws[tag] = draws_by_checkpoint(cont)
        tokens[tag] = defaultdict(int)
        for row in cont.iter_rows(named=True):
            tokens[tag][(row["question_id"], row["trajectory"], row["k"])] += _draw_tokens(row)
    out = []
    for t in roll.iter_rows(named=True):
        q, j = t["question_id"], t["trajectory"]
        points = []
        for k in checkpoint_positions(t["T"], stride):
            key = (q, -1 if k == 0 else j, k)
            points.append(
                {"k": k, **{f"{tag}": draws[tag][key] for tag in draws}, **{f"tok_{g}": tokens[g][key] for g in tokens}}
            )
        out.append({**t, "points": points})
    return out


def check_probe_agreement(results: Path, cfg: dict, model: str, dataset: str, stride: int) -> None:
    """table_probe_agreement's point estimates recomputed from the raw draws: r and mean |diff| of
    H_k over checkpoints before the end, each estimator's mean rho, tokens per checkpoint."""
    trajs = raw_checkpoints(results, cfg, model, dataset, stride)
    alpha = cfg["estimation"]["alpha"]
    hf, hp, rho = [], [], {"full": [], "probe": []}
    for t in trajs:
        for p in t["points"]:
            if p["k"] < t["T"]:
                hf.append(conditional_answer_entropy(p["full"]))
                hp.append(conditional_answer_entropy(p["probe"]))
        for tag in rho:
            h = [conditional_answer_entropy(p[tag]) for p in t["points"]]
            s = [gold_surprisal(p[tag], t["gold"], alpha=alpha)[0] for p in t["points"]]
            rho[tag].append(alignment_coefficient(h, s, [p[tag].count(t["gold"]) for p in t["points"]])[0])
    table = pl.read_csv(results / "tables/table_probe_agreement.csv")
    row = table.filter((pl.col("model") == model) & (pl.col("dataset") == dataset)).row(0, named=True)
    assert row["n_checkpoints"] == len(hf)
    assert row["r_H"] == pytest.approx(float(np.corrcoef(hf, hp)[0, 1]), abs=1e-9)
    assert row["r_H_lo"] <= row["r_H"] <= row["r_H_hi"]
    assert row["mad_H"] == pytest.approx(float(np.mean(np.abs(np.array(hf) - np.array(hp)))), abs=1e-12)
    for tag, values in rho.items():
        v = np.array(values, dtype=float)
        if np.isnan(v).all():  # no trajectory has a rho (on real questions a small model may never draw the gold)
            assert row[f"rho_{tag}"] is None or math.isnan(row[f"rho_{tag}"])
        else:
            assert row[f"rho_{tag}"] == pytest.approx(float(np.nanmean(v)), abs=1e-9)
    for tag in ("full", "probe"):
        # tokens per estimated checkpoint: the empty prefix once per question
        per = {}
        for t in trajs:
            for p in t["points"]:
                per[(t["question_id"], -1 if p["k"] == 0 else t["trajectory"], p["k"])] = p[f"tok_{tag}"]
        assert row[f"tokens_{tag}"] == pytest.approx(sum(per.values()) / len(per))
    assert row["token_ratio"] == pytest.approx(row["tokens_probe"] / row["tokens_full"])


def _exit(t: dict, decide, source: str):
    """(correct, cost, exited) of one trajectory read checkpoint by checkpoint until ``decide``
    (answers seen so far -> bool) says stop; every draw before the exit is paid for."""
    spent, seen = 0, []
    for p in t["points"]:
        if p["k"] >= t["T"]:
            break
        spent += p[f"tok_{source}"]
        seen.append(p[source])
        if decide(seen):
            return _mode(p[source]) == t["gold"], p["k"] + spent, True
    return t["correct"], t["T"] + spent, False


def recompute_early_exit(results: Path, cfg: dict, model: str, dataset: str, stride: int, budgets) -> dict:
    """(rule, source, setting) -> (accuracy, relative tokens) of every per-trajectory rule."""
    trajs = raw_checkpoints(results, cfg, model, dataset, stride)
    ee = cfg.get("early_exit", {})
    rules = {("full", "-", "-"): lambda t: (t["correct"], t["T"], False)}
    for source in ("full", "probe"):
        for tau in ee.get("entropy_thresholds", [0.0, 0.25, 0.5, 1.0]):
            rules[("entropy", source, f"tau={tau:g}")] = lambda t, s=source, tau=tau: _exit(
                t, lambda seen: conditional_answer_entropy(seen[-1]) <= tau + 1e-12, s
            )
        for m in ee.get("consecutive", [2, 3, 4]):

            def same(seen, m=m):
                modes = [_mode(a) for a in seen[-m:]]
                return len(modes) == m and len(set(modes)) == 1 and modes[0] != "NULL"

            rules[("consecutive", source, f"m={m}")] = lambda t, s=source, same=same: _exit(t, same, s)
    for b in budgets:

        def budget(t, b=b):
            if t["T"] <= b:
                return t["correct"], t["T"], False
            p = next(p for p in t["points"] if p["k"] == b)
            return _mode(p["probe"]) == t["gold"], b + p["tok_probe"], True

        rules[("budget", "probe", f"B={b}")] = budget
    out = {}
    for key, rule in rules.items():
        results_ = [rule(t) for t in trajs]
        out[key] = (
            float(np.mean([c for c, _, _ in results_])),
            sum(c for _, c, _ in results_) / sum(t["T"] for t in trajs),
        )
    return out


def recompute_deepconf(results: Path, model: str, dataset: str, *, window: int, warmup: int, keep: float):
    """(accuracy, relative tokens) of DeepConf's online rule on every question's pool, from the
    rollouts' token confidences: plain loops over explicit windows."""
    roll = pl.read_parquet(results / f"rollouts/{model}/{dataset}/*.parquet").sort("question_id", "trajectory")
    correct, spent, full = [], 0, 0
    for _, part in roll.group_by("question_id", maintain_order=True):
        traces = part.to_dicts()

        def groups(c):
            c = list(c)
            if not c:  # an empty response (EOS first) has no group: its lowest is NaN and it never votes
                return []
            if len(c) <= window:
                return [sum(c) / len(c)]
            return [sum(c[i : i + window]) / window for i in range(len(c) - window + 1)]

        lowest = [min(g) if (g := groups(t["token_confidence"])) else math.nan for t in traces]
        s = float(np.nanquantile(lowest[:warmup], 1 - keep)) if not all(map(math.isnan, lowest[:warmup])) else math.nan
        votes = Counter()
        for i, t in enumerate(traces):
            full += t["T"]
            g = groups(t["token_confidence"])
            stop = next((w for w, v in enumerate(g) if v < s), None) if i >= warmup else None
            if stop is None:
                spent += t["T"]
                if i >= warmup or lowest[i] >= s:  # deepconf/wrapper.py: a warm-up trace votes at or above s
                    votes[t["answer"]] += lowest[i]
            else:
                spent += min(t["T"], stop + window)
        if len(votes) > 1:
            votes.pop("NULL", None)
        answer = min(votes, key=lambda a: (-votes[a], a)) if votes else "NULL"
        correct.append(answer == traces[0]["gold"])
    return float(np.mean(correct)), spent / full


def recompute_dynasor(results: Path, cfg: dict, model: str, dataset: str, stride: int, interval: int, m: int):
    """(accuracy, relative tokens) of Dynasor's rule (dynasor/core/cot.py): the first probe sample
    every ``interval`` tokens before the end; exit once the last m answers are equal, not NULL and
    free of its hedge words (substrings of the lower-cased text)."""
    hedges = ("wait", "hold", "but", "okay", "no", "hmm")
    probe = pl.read_parquet(results / f"continuations/{model}/{dataset}/stride-{stride}/probe/*.parquet")
    first = {(r["question_id"], r["trajectory"], r["k"]): r for r in probe.filter(pl.col("sample") == 0).to_dicts()}
    roll = pl.read_parquet(results / f"rollouts/{model}/{dataset}/*.parquet")
    correct, spent, full = [], 0, 0
    for t in roll.filter(pl.col("trajectory") < cfg["sampling"]["n_trajectories"]).iter_rows(named=True):
        seen, ok, cost, right = [], [], 0, t["correct"]
        for k in range(interval, t["T"], interval):
            r = first[(t["question_id"], t["trajectory"], k)]
            cost += _draw_tokens(r)
            seen.append(r["answer"])
            ok.append(r["answer"] != "NULL" and not any(w in r["text"].lower() for w in hedges))
            if len(seen) >= m and len(set(seen[-m:])) == 1 and all(ok[-m:]):
                right, cost = r["answer"] == t["gold"], cost + k
                break
        else:
            cost += t["T"]
        correct.append(right)
        spent, full = spent + cost, full + t["T"]
    return float(np.mean(correct)), spent / full


def check_early_exit(results: Path, cfg: dict, model: str, dataset: str, stride: int, budgets, warmup: int) -> None:
    """Every row of table_early_exit for (model, dataset) equals its independent recomputation."""
    table = pl.read_csv(results / "tables/table_early_exit.csv")
    rows = {
        (r["rule"], r["source"], r["setting"]): r
        for r in table.filter((pl.col("model") == model) & (pl.col("dataset") == dataset)).iter_rows(named=True)
    }
    want = recompute_early_exit(results, cfg, model, dataset, stride, budgets)
    sel = cfg.get("selection", {})
    for eta in sel.get("keep_fractions", [0.1, 0.9]):
        want[("deepconf", "confidence", f"eta={eta:g}")] = recompute_deepconf(
            results, model, dataset, window=sel.get("window", 8), warmup=warmup, keep=eta
        )
    interval = cfg["early_exit"]["dynasor_interval"] or -(-32 // stride) * stride
    for m in cfg["early_exit"]["dynasor_windows"]:
        want[("dynasor", "probe", f"m={m},every={interval}")] = recompute_dynasor(
            results, cfg, model, dataset, stride, interval, m
        )
    assert set(want) <= set(rows), sorted(set(want) - set(rows))
    for key, (acc, tok) in want.items():
        r = rows[key]
        assert r["accuracy"] == pytest.approx(acc, abs=1e-12), key
        assert r["rel_tokens"] == pytest.approx(tok, abs=1e-12), key
        assert r["accuracy_lo"] <= r["accuracy"] + 1e-12 and r["accuracy"] <= r["accuracy_hi"] + 1e-12, key
        assert (
            (r["verdict"] == "baseline") if key[0] in ("full", "majority") else (("more" in r["verdict"]) == (tok > 1))
        )


def check_probe_tables(results: Path, cfg: dict, datasets: list[str], stride: int) -> None:
    """table_probe_agreement and table_early_exit of every model x dataset recomputed from the raw
    draws (the budgets and DeepConf's warm-up as the config resolves them)."""
    import copy

    from siaflow.config import deepconf_warmup, exit_budgets, prepare

    full = prepare(copy.deepcopy(cfg), Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml")
    for model in cfg["models"]:
        for dataset in datasets:
            check_probe_agreement(results, full, model, dataset, stride)
            check_early_exit(results, full, model, dataset, stride, exit_budgets(full), deepconf_warmup(full))
