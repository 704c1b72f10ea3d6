"""What bench/adaptive.py compares between a fixed-K run and an adaptive run of the same
trajectories: Table 1 (rho, rho_pre), Fig 2's AUC at each relative position, Table 2's shuffled
rho, each as adaptive - fixed with a paired bootstrap over questions, and where the draws saved
come from (K and sampled tokens by relative position and by correct / incorrect)."""

from __future__ import annotations

import math
from glob import glob

import numpy as np
import polars as pl

BINS = [(0.0, 0.0, "k = 0"), (0.0, 0.25, "(0, .25]"), (0.25, 0.5, "(.25, .5]"), (0.5, 0.75, "(.5, .75]")]
BINS += [(0.75, 0.999999, "(.75, 1)"), (0.999999, 1.0, "k = T")]


def _entropy(results: str, variant: str) -> pl.LazyFrame:
    from siaflow import layout

    paths = sorted(glob(layout.glob(layout.ENTROPY, results=results)))
    return pl.concat([pl.scan_parquet(p) for p in paths if p.endswith(f"/{variant}.parquet")], how="vertical_relaxed")


def compare_arms(cfg: dict, fixed: dict, arm: dict, *, n_boot: int | None = None) -> dict:
    from siaflow.analysis.metrics import table1_alignment, trajectory_alignment
    from siaflow.config import entropy_column

    h = entropy_column(cfg)
    a = cfg["analysis"]
    boot = {"n_boot": n_boot or a["bootstrap"], "ci": a["ci"], "seed": a["seed"]}
    out = {}
    for variant in ("original", "shuffled"):
        ef, ea = _entropy(fixed["dir"], variant), _entropy(arm["dir"], variant)
        tf, ta = (trajectory_alignment(e, h=h).collect() for e in (ef, ea))
        t1a = table1_alignment(ta.lazy(), **boot)
        out[variant] = {"alignment": _compared(tf, ta, boot), "table1_adaptive": t1a.to_dicts()}
        # the split-sample rho (H from the first half of a checkpoint's draws, S from the second)
        split = [t.with_columns(pl.col(a).alias(b) for a, b in SPLIT.items()) for t in (tf, ta)]
        out[variant]["alignment_split"] = _compared(*split, boot)
    grid = np.round(np.linspace(0.0, 1.0, a["grid_points"]), 10)
    out["auc"] = auc_differences(_entropy(fixed["dir"], "original"), _entropy(arm["dir"], "original"), h, grid, boot)
    out["savings"] = savings(fixed["dir"], arm["dir"])
    return out


SPLIT = {"rho_split": "rho", "rho_split_reason": "rho_reason", "rho_split_pre": "rho_pre"}
SPLIT |= {"rho_split_pre_reason": "rho_pre_reason"}


def _compared(tf: pl.DataFrame, ta: pl.DataFrame, boot: dict) -> list:
    """``compare_alignment`` of the two arms' trajectories (means over each arm's defined
    trajectories, their difference, and the difference over the trajectories defined in both), and
    whether each adaptive mean lies in its fixed-K interval (Table 1's)."""
    from siaflow.analysis.metrics import compare_alignment, table1_alignment

    cmp = compare_alignment(tf, ta, ("fixed", "adaptive"), boot=boot)
    t1f = table1_alignment(tf.lazy(), **boot)
    cmp = cmp.join(
        t1f.select("model", "dataset", "rho_lo", "rho_hi", "rho_pre_lo", "rho_pre_hi"), on=["model", "dataset"]
    )
    return cmp.with_columns(
        rho_within=pl.col("mean_rho_adaptive").is_between("rho_lo", "rho_hi"),
        rho_pre_within=pl.col("mean_rho_pre_adaptive").is_between("rho_pre_lo", "rho_pre_hi"),
    ).to_dicts()


def _points(entropy: pl.LazyFrame, h: str, grid: np.ndarray) -> pl.DataFrame:
    from siaflow.analysis.curves import TrajectoryPoints

    df = entropy.with_columns(score=-pl.col(h))
    pts = TrajectoryPoints.of(df, order="k", values=["rel_pos", "score"], per_trajectory=("correct",))
    return pts.interpolate("rel_pos", "score", grid)


def auc_differences(fixed: pl.LazyFrame, adaptive: pl.LazyFrame, h: str, grid: np.ndarray, boot: dict) -> list:
    """Fig 2's AUC of -H_k for correctness at each relative position, fixed and adaptive, and the
    difference with a paired bootstrap over questions (the same resamples serve both)."""
    from siaflow.analysis.stats import bootstrap_roc_auc, resample_counts, roc_auc

    pf, pa = _points(fixed, h, grid), _points(adaptive, h, grid)
    keys = ["model", "dataset", "question_id", "trajectory", "rel_pos"]
    both = pf.join(pa.select(*keys, pl.col("score").alias("score_a")), on=keys, how="inner")
    lo_q, hi_q = (1 - boot["ci"]) / 2, 1 - (1 - boot["ci"]) / 2
    rows = []
    for (model, dataset), part in both.group_by("model", "dataset", maintain_order=True):
        qids = part["question_id"].unique().sort()
        counts = resample_counts(len(qids), boot["n_boot"], boot["seed"])
        part = part.with_columns(_qi=pl.col("question_id").replace_strict(qids, np.arange(len(qids))))
        for (x,), p in part.sort("rel_pos").group_by("rel_pos", maintain_order=True):
            y, g = p["correct"].to_numpy(), p["_qi"].to_numpy()
            sf, sa = p["score"].to_numpy(), p["score_a"].to_numpy()
            auc_f, auc_a = roc_auc(sf, y), roc_auc(sa, y)
            d = bootstrap_roc_auc(sa, y, g, counts) - bootstrap_roc_auc(sf, y, g, counts)
            d = d[np.isfinite(d)]
            lo, hi = (np.quantile(d, lo_q), np.quantile(d, hi_q)) if d.size else (math.nan, math.nan)
            rows.append({"model": model, "dataset": dataset, "rel_pos": float(x), "auc_fixed": auc_f})
            rows[-1] |= {"auc_adaptive": auc_a, "delta": auc_a - auc_f, "lo": float(lo), "hi": float(hi)}
    return rows


def _bin(col: str = "rel_pos") -> pl.Expr:
    expr = pl.lit(None, dtype=pl.String)
    for lo, hi, name in reversed(BINS):
        cond = (pl.col(col) == 0) if hi == 0 else (pl.col(col) > lo) & (pl.col(col) <= hi)
        expr = pl.when(cond).then(pl.lit(name)).otherwise(expr)
    return expr


def _draws(results: str) -> pl.DataFrame:
    """Sampled tokens and draws per checkpoint of the continuation shards, with model and variant."""
    from siaflow import layout
    from siaflow.io import read_provenance

    frames = []
    for path in sorted(glob(layout.glob(layout.CONTINUATIONS, results=results))):
        prov = read_provenance(path)
        if prov.get("variant") not in ("original", "shuffled"):
            continue
        df = pl.read_parquet(path, columns=["question_id", "trajectory", "k", "n_generated"])
        df = df.group_by("question_id", "trajectory", "k").agg(tokens=pl.col("n_generated").sum(), K=pl.len())
        tags = {"model": pl.lit(prov["model"]), "variant": pl.lit(prov["variant"])}
        frames.append(df.with_columns(pl.col("trajectory").cast(pl.Int64), **tags))
    return pl.concat(frames)


def savings(fixed: str, adaptive: str) -> list:
    """Per model, variant, relative-position bin and correct / incorrect: checkpoints, mean K and
    sampled tokens, fixed and adaptive. k = 0 is drawn once per question, classed by trajectory 0."""
    keys = ["model", "variant", "question_id", "trajectory", "k"]
    ent = pl.concat([_entropy(adaptive, v) for v in ("original", "shuffled")]).select(*keys, "rel_pos", "correct")
    ent = ent.collect().unique(keys)
    f, a = _draws(fixed), _draws(adaptive)
    both = f.join(a, on=keys, suffix="_a", how="left").join(ent, on=keys, how="left")
    k0 = ent.filter(pl.col("k") == 0).sort("trajectory").unique(["model", "variant", "question_id"], keep="first")
    k0 = k0.drop("trajectory", "k")  # k = 0 (once per question) is classed by its trajectory 0
    both = both.join(k0, on=["model", "variant", "question_id"], how="left", suffix="_q")
    both = both.with_columns(
        rel_pos=pl.coalesce("rel_pos", pl.when(pl.col("k") == 0).then(0.0)),
        correct=pl.coalesce("correct", "correct_q"),
    )
    out = (
        both.with_columns(bin=_bin())
        .group_by("model", "variant", "bin", "correct")
        .agg(
            checkpoints=pl.len(),
            mean_K_fixed=pl.col("K").mean(),
            mean_K_adaptive=pl.col("K_a").mean(),
            tokens_fixed=pl.col("tokens").sum(),
            tokens_adaptive=pl.col("tokens_a").sum(),
        )
        .sort("model", "variant", "bin", "correct")
    )
    return out.to_dicts()


def _fmt(x, d=3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.{d}f}"


def _tokens_line(report: dict, arm: dict) -> str:
    def tot(ledger, key):
        return sum(v.get(key, 0) for v in ledger.values())

    fl, al, rows = report["fixed"]["ledger"], arm["ledger"], arm["compare"]["savings"]
    gen = sum(r["tokens_adaptive"] for r in rows) / sum(r["tokens_fixed"] for r in rows)
    mk = tot(al, "continuations") / tot(al, "prefixes")

    def ratio(m):  # sampled tokens of every stored draw, shared k = 0 rows included, both sides alike
        part = [r for r in rows if r["model"] == m]
        return sum(r["tokens_adaptive"] for r in part) / sum(r["tokens_fixed"] for r in part)

    per_model = "; ".join(
        f"{m} {ratio(m):.3f} (mean K {al[m]['continuations'] / al[m]['prefixes']:.1f})" for m in sorted(fl)
    )
    line = (
        f"sampled tokens adaptive/fixed **{gen:.3f}** (per model: {per_model}); mean K {mk:.2f} of "
        f"{tot(fl, 'continuations') / tot(fl, 'prefixes'):.0f}; stopped early {tot(al, 'stopped_early'):,} of "
        f"{tot(al, 'prefixes'):,} prefixes"
    )
    if "decoded_tokens" not in next(iter(al.values())):
        return line + " (replayed on the fixed draws: no decoded tokens or wall time)"
    dec = tot(al, "decoded_tokens") / tot(fl, "decoded_tokens")
    ft, at = report["fixed"]["timing"], arm["timing"]
    wall = at.get("continuation_jobs_s", math.nan) / ft.get("continuation_jobs_s", math.nan)
    secs = tot(al, "seconds") / max(tot(fl, "seconds"), 1e-9)
    per_model = "; ".join(f"{m} {al[m]['decoded_tokens'] / fl[m]['decoded_tokens']:.3f}" for m in sorted(fl))
    line += (
        f"; decoded tokens adaptive/fixed **{dec:.3f}** ({tot(al, 'decoded_tokens'):,} vs "
        f"{tot(fl, 'decoded_tokens'):,}; {per_model}); continuation jobs' wall {wall:.3f} "
        f"({at.get('continuation_jobs_s')} vs {ft.get('continuation_jobs_s')} s); generation seconds {secs:.3f}"
    )
    if "replay_check" in arm:
        line += f"; its replay on the fixed draws: {arm['replay_check']}"
    return line


def markdown(report: dict) -> str:
    lines = [f"# Adaptive vs fixed K: {report['config']} ({report['machine']})", ""]
    for arm in report["arms"]:
        c = arm["compare"]
        lines += [f"## {arm['name']}", "", _tokens_line(report, arm), ""]
        for key, title in (("alignment", "ρ"), ("alignment_split", "split-sample ρ")):
            lines += [*_alignment_lines(c, key, title), ""]
        lines += ["", "Fig 2 AUC of −H_k, adaptive − fixed [95% CI] at each relative position:", ""]
        for group in sorted({(r["model"], r["dataset"]) for r in c["auc"]}):
            pts = [r for r in c["auc"] if (r["model"], r["dataset"]) == group]
            worst = max(pts, key=lambda r: abs(r["delta"]) if not math.isnan(r["delta"]) else -1)
            cells = ", ".join(f"{r['rel_pos']:.2f}: {_fmt(r['delta'])} [{_fmt(r['lo'])}, {_fmt(r['hi'])}]" for r in pts)
            lines.append(
                f"* {' / '.join(group)} (largest |Δ| {_fmt(worst['delta'])} at {worst['rel_pos']:.2f}): {cells}"
            )
        lines += ["", *_savings_lines(c["savings"])]
        lines.append("")
    return "\n".join(lines)


def _alignment_lines(c: dict, key: str, title: str) -> list[str]:
    """Table 1's means, fixed and adaptive, their difference, and (n defined fixed / adaptive /
    both) with the difference over the trajectories defined in both arms."""
    head = f"| model | dataset | variant | {title} fixed [CI] | adaptive (within) | Δ [CI] | n defined f / a / both | Δ on both [CI] "
    out = [head + "| pre fixed [CI] | pre adaptive (within) | Δ pre [CI] | n pre | Δ pre on both [CI] |"]
    out += ["|---|---|---|" + "---|" * 10]
    for variant in ("original", "shuffled"):
        for r in c[variant][key]:
            cells = [r["model"], r["dataset"], variant]
            for col, tag in (("rho", ""), ("rho_pre", "pre_")):
                cells += [
                    f"{r[f'mean_{col}_fixed']:.3f} [{r[f'{col}_lo']:.3f}, {r[f'{col}_hi']:.3f}]",
                    f"{r[f'mean_{col}_adaptive']:.3f} ({'yes' if r[f'{col}_within'] else 'NO'})",
                    f"{_fmt(r[f'delta_{col}'])} [{_fmt(r[f'delta_{col}_lo'])}, {_fmt(r[f'delta_{col}_hi'])}]",
                    f"{r[f'n_{tag}defined_fixed']} / {r[f'n_{tag}defined_adaptive']} / {r[f'n_{tag}defined_both']}",
                    f"{_fmt(r[f'delta_{col}_both'])} [{_fmt(r[f'delta_{col}_both_lo'])}, {_fmt(r[f'delta_{col}_both_hi'])}]",
                ]
            out.append("| " + " | ".join(cells) + " |")
    return out


def _savings_lines(rows: list) -> list[str]:
    """Per model, variant and correct / incorrect: mean K (adaptive) and sampled tokens adaptive /
    fixed in each relative-position bin, and over all bins."""
    names = [name for *_, name in BINS]
    out = ["Where the draws are saved: mean K adaptive (fixed: K) · sampled tokens adaptive/fixed, by position:", ""]
    out += [
        "| model | variant | correct | " + " | ".join(names) + " | all |",
        "|---|---|---|" + "---|" * (len(names) + 1),
    ]
    groups = sorted({(r["model"], r["variant"], r["correct"]) for r in rows}, key=str)
    for g in groups:
        part = {r["bin"]: r for r in rows if (r["model"], r["variant"], r["correct"]) == g}
        cells = [_cell([part[n]]) if n in part else "" for n in names]
        out.append(f"| {g[0]} | {g[1]} | {g[2]} | " + " | ".join(cells) + f" | {_cell(list(part.values()))} |")
    return out


def _cell(rows: list) -> str:
    n = sum(r["checkpoints"] for r in rows)
    k = sum(r["mean_K_adaptive"] * r["checkpoints"] for r in rows) / n
    tf, ta = sum(r["tokens_fixed"] for r in rows), sum(r["tokens_adaptive"] for r in rows)
    return f"{k:.1f} · {ta / tf:.2f}" if tf else f"{k:.1f} · –"
