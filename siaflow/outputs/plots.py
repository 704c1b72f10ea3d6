"""Figures. One style for all (sizes, palette per regime, fonts) so they read as one paper.

Every figure function takes the data frame it draws (built in ``siaflow.analysis.metrics``) and writes PNG
and PDF; the workflow saves that frame beside the figure (``<figure>.data.csv``) so tests and
readers can check the numbers behind each plot.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402
import seaborn as sns  # noqa: E402

REGIME_PALETTE = {"base": "#7f7f7f", "sft": "#1f77b4", "sft+rl": "#d62728"}
CORRECT_PALETTE = {True: "#2ca02c", False: "#d62728"}
PANEL = (3.4, 2.6)


def apply_style() -> None:
    sns.set_theme(
        context="paper",
        style="whitegrid",
        font_scale=1.0,
        rc={
            "figure.dpi": 150,
            "savefig.dpi": 150,
            "axes.titlesize": 9,
            "axes.labelsize": 9,
            "legend.fontsize": 7,
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
            "font.family": "DejaVu Sans",
            # TrueType (Type 42) fonts embedded in PDFs: conference upload checkers reject
            # matplotlib's default Type 3 fonts
            "pdf.fonttype": 42,
            "ps.fonttype": 42,
        },
    )


def save(fig, png: str | Path, pdf: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(png, bbox_inches="tight")
    fig.savefig(pdf, bbox_inches="tight", metadata={"CreationDate": None})  # the same bytes on a rerun
    plt.close(fig)


def _panels(keys: list[tuple], ncols: int | None = None):
    n = max(1, len(keys))
    ncols = ncols or min(n, 3)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(PANEL[0] * ncols, PANEL[1] * nrows), squeeze=False, sharey=True)
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat


def empty_figure(png, pdf, title: str, message: str) -> None:
    """A figure that says why it has nothing to draw (e.g. no non-aligned model in the grid)."""
    apply_style()
    fig, ax = plt.subplots(figsize=PANEL)
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=9)
    fig.suptitle(title, fontsize=10)
    save(fig, png, pdf)


def _band(ax, x, mean, lo, hi, color, label):
    ax.plot(x, mean, color=color, label=label, lw=1.5)
    ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)


def fig_cumulative_gain(
    data: pl.DataFrame, png, pdf, *, gain: str = "surprisal", title: str = "Normalised cumulative information gain"
):
    """Fig 1 / Fig 4: G^_k against k/T, correct vs incorrect, one panel per model x dataset; the
    curves of one ``gain`` basis (``curves.GAIN_BASES``) of the data."""
    if data.height:
        data = data.filter(pl.col("gain") == gain)
    if data.height == 0:
        return empty_figure(png, pdf, title, "no model x dataset in this selection")
    apply_style()
    keys = data.select("model", "dataset").unique(maintain_order=True).rows()
    fig, axes = _panels(keys)
    for ax, (model, dataset) in zip(axes, keys):
        part = data.filter((pl.col("model") == model) & (pl.col("dataset") == dataset))
        for correct in (True, False):
            c = part.filter(pl.col("correct") == correct).sort("rel_pos")
            label = "correct" if correct else "incorrect"
            if c.height and c["rel_pos"].is_null().all():  # every trajectory of the class excluded
                n_out = c["n_excluded"][0]
                ax.plot([], [], color=CORRECT_PALETTE[correct], label=f"{label}: all {n_out} have G_T <= 0, no curve")
            elif c.height:
                c = c.drop_nulls("rel_pos")
                n_traj, n_out = c["n_trajectories"][0], c["n_excluded"][0]
                _band(
                    ax,
                    c["rel_pos"],
                    c["mean"],
                    c["lo"],
                    c["hi"],
                    CORRECT_PALETTE[correct],
                    f"{label} (n={n_traj - n_out}; {n_out} with G_T <= 0 left out)",
                )
        ax.plot([0, 1], [0, 1], ls=":", color="black", lw=0.8)
        ax.set(
            title=f"{model} / {dataset}",
            xlabel="relative position k/T",
            ylabel=f"G^_k from {'S_k' if gain == 'surprisal' else 'H_k'}",
            xlim=(0, 1),
        )
        ax.legend(loc="lower right")
    fig.suptitle(title, fontsize=10)
    save(fig, png, pdf)


def fig_auc(
    absolute: pl.DataFrame,
    relative: pl.DataFrame,
    png,
    pdf,
    *,
    title: str = "Early separability: AUC of -H_k for correctness",
):
    """Fig 2 / Fig 5: AUC vs absolute prefix length (left) and relative position (right)."""
    if absolute.height == 0:
        return empty_figure(png, pdf, title, "no model x dataset in this selection")
    apply_style()
    fig, (a, b) = plt.subplots(1, 2, figsize=(PANEL[0] * 2, PANEL[1]), sharey=True)
    palette = sns.color_palette("tab10")
    keys = absolute.select("model", "dataset").unique(maintain_order=True).rows()
    for i, (model, dataset) in enumerate(keys):
        color = palette[i % len(palette)]
        sel = (pl.col("model") == model) & (pl.col("dataset") == dataset)
        p = absolute.filter(sel).sort("at_k")
        _band(a, p["at_k"], p["auc"], p["lo"], p["hi"], color, f"{model} / {dataset}")
        r = relative.filter(sel).sort("rel_pos")
        _band(b, r["rel_pos"], r["auc"], r["lo"], r["hi"], color, f"{model} / {dataset}")
    for ax, xlabel in ((a, "prefix length k (tokens)"), (b, "relative position k/T")):
        ax.axhline(0.5, ls=":", color="black", lw=0.8)
        ax.set(xlabel=xlabel, ylabel="AUC", ylim=(0, 1.02))
    b.legend(loc="lower right")
    fig.suptitle(title, fontsize=10)
    save(fig, png, pdf)


def fig_saturation(
    curve: pl.DataFrame,
    summary: pl.DataFrame,
    regimes: dict[str, str],
    png,
    pdf,
    *,
    title: str = "Saturation: mean conditional answer entropy",
):
    """Fig 3: mean H_k against k/T per model (colour = training regime), plateau level dashed."""
    apply_style()
    datasets = curve["dataset"].unique(maintain_order=True).to_list()
    fig, axes = _panels([(d,) for d in datasets])
    for ax, dataset in zip(axes, datasets):
        part = curve.filter(pl.col("dataset") == dataset)
        models = part["model"].unique(maintain_order=True).to_list()
        styles = ["-", "--", "-.", ":"]
        for i, model in enumerate(models):
            c = part.filter(pl.col("model") == model).sort("rel_pos")
            color = REGIME_PALETTE.get(regimes.get(model, "base"), "#333333")
            s = summary.filter((pl.col("model") == model) & (pl.col("dataset") == dataset))
            label = model
            if s.height:
                label += f" (plateau {s['plateau_level'][0]:.2f}, rebound {100 * s['late_rebound_rate'][0]:.0f}%)"
            ax.plot(c["rel_pos"], c["mean"], color=color, ls=styles[i % len(styles)], lw=1.5, label=label)
            ax.fill_between(c["rel_pos"], c["lo"], c["hi"], color=color, alpha=0.15, lw=0)
            if s.height:
                ax.axhline(s["plateau_level"][0], color=color, ls=":", lw=0.8)
        top = float(part["hi"].fill_nan(None).max() or 0.0)
        # headroom above the curves for the legend, which covered curves and plateau lines before
        ax.set(
            title=dataset,
            xlabel="relative position k/T",
            ylabel="mean H_k (nats)",
            xlim=(0, 1),
            ylim=(-0.05 * max(top, 0.1), 1.6 * max(top, 0.1)),
        )
        ax.legend(loc="upper center", framealpha=0.9)
    fig.suptitle(title, fontsize=10)
    save(fig, png, pdf)


def fig_fano(data: pl.DataFrame, png, pdf, *, title: str = "Fano's bound: MAP error vs conditional answer entropy"):
    """Empirical error of argmax p^_k per H_k bin (points, CI over questions) against Fano's lower
    bound (line); one panel per dataset, one colour per model."""
    apply_style()
    datasets = data["dataset"].unique(maintain_order=True).to_list()
    fig, axes = _panels([(d,) for d in datasets])
    width, height = fig.get_size_inches()
    fig.set_size_inches(width + 2.6, height)  # room for the legend on the right
    palette = sns.color_palette("tab10")
    for ax, dataset in zip(axes, datasets):
        part = data.filter(pl.col("dataset") == dataset)
        for i, model in enumerate(part["model"].unique(maintain_order=True).to_list()):
            c = part.filter(pl.col("model") == model).sort("mean_H")
            color = palette[i % len(palette)]
            ax.errorbar(
                c["mean_H"],
                c["error_q_mean"],
                yerr=[c["error_q_mean"] - c["lo"], c["hi"] - c["error_q_mean"]],
                fmt="o",
                ms=3,
                color=color,
                lw=0.8,
                label=f"{model}: empirical MAP error",
            )
            ax.plot(c["mean_H"], c["fano_bound"], color=color, ls="--", lw=1.0, label=f"{model}: Fano bound")
        ax.set(
            title=f"{dataset} (|A| = {part['answer_space'][0]})",
            xlabel="H_k (nats)",
            ylabel="error of argmax p^_k",
            ylim=(-0.02, 1.02),
        )
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.suptitle(title, fontsize=10)
    save(fig, png, pdf)


def fig_edis_trajectories(data: pl.DataFrame, png, pdf, *, params, title: str = "Token-entropy trajectories"):
    """Example token-entropy trajectories, correct (top row) vs incorrect (bottom row) per model,
    with burst spikes (triangles) and peak-valley spikes (crosses) marked."""
    apply_style()
    keys = data.select("model", "dataset").unique(maintain_order=True).rows()
    fig, axes = plt.subplots(
        2, max(1, len(keys)), figsize=(PANEL[0] * max(1, len(keys)), PANEL[1] * 2), squeeze=False, sharey=True
    )
    palette = sns.color_palette("tab10")
    for col, (model, dataset) in enumerate(keys):
        for row, correct in enumerate((True, False)):
            ax = axes[row, col]
            part = data.filter(
                (pl.col("model") == model) & (pl.col("dataset") == dataset) & (pl.col("correct") == correct)
            )
            for i, (_, tr) in enumerate(part.group_by("question_id", "trajectory", maintain_order=True)):
                color = palette[i % len(palette)]
                ax.plot(tr["t"], tr["H"], color=color, lw=1.0, alpha=0.85)
                b, r = tr.filter(pl.col("burst")), tr.filter(pl.col("rebound"))
                ax.scatter(b["t"], b["H"], marker="^", color=color, s=22, zorder=3)
                ax.scatter(r["t"], r["H"], marker="x", color=color, s=22, zorder=3)
            ax.set(
                title=f"{model} / {dataset}: {'correct' if correct else 'incorrect'}",
                xlabel="token t",
                ylabel="H_t (nats)",
            )
    handles = [
        plt.Line2D(
            [], [], marker="^", ls="", color="black", label=f"burst spike (w={params.window}, tau_b={params.tau_burst})"
        ),
        plt.Line2D([], [], marker="x", ls="", color="black", label=f"peak-valley spike (tau_r={params.tau_rebound})"),
    ]
    axes[0, 0].legend(handles=handles, loc="upper right")
    fig.suptitle(title, fontsize=10)
    save(fig, png, pdf)


def fig_edis_separation(
    data: pl.DataFrame, auc: pl.DataFrame, png, pdf, *, title: str = "Separation of correct and incorrect responses"
):
    """Distributions of EDIS (left) and mean token entropy (right), correct vs incorrect, one row
    per model x dataset; each panel states the score's AUC for correctness (lower score = correct)."""
    apply_style()
    keys = data.select("model", "dataset").unique(maintain_order=True).rows()
    fig, axes = plt.subplots(max(1, len(keys)), 2, figsize=(PANEL[0] * 2, PANEL[1] * max(1, len(keys))), squeeze=False)
    for row, (model, dataset) in enumerate(keys):
        part = data.filter((pl.col("model") == model) & (pl.col("dataset") == dataset))
        for col, score in enumerate(("edis", "mean_entropy")):
            ax = axes[row, col]
            for correct in (True, False):
                v = part.filter(pl.col("correct") == correct)[score].drop_nans().drop_nulls().to_numpy()
                if v.size:
                    ax.hist(
                        v,
                        bins=30,
                        density=True,
                        alpha=0.5,
                        color=CORRECT_PALETTE[correct],
                        label=f"{'correct' if correct else 'incorrect'} (n={v.size})",
                    )
            a = auc.filter((pl.col("model") == model) & (pl.col("dataset") == dataset) & (pl.col("score") == score))[
                "auc"
            ]
            ax.set(title=f"{model} / {dataset}: {score} (AUC {a[0]:.2f})", xlabel=score, ylabel="density")
            ax.legend(loc="upper right")
    fig.suptitle(title, fontsize=10)
    save(fig, png, pdf)


def fig_training_dynamics(data: pl.DataFrame, png, pdf, *, title: str = "SIA through training"):
    """fig_training_dynamics: accuracy, alignment, early AUC and H_0 of every saved step, one colour
    per regime (the sft+rl line starts at the sft run's last step), 95% CIs over questions."""
    apply_style()
    panels = [
        ("accuracy", {"accuracy": "-"}),
        (
            "alignment rho",
            {"mean_rho": "-", "mean_rho_correct": "--", "mean_rho_incorrect": ":", "mean_rho_split": "-."},
        ),
        ("early AUC of -H_k", {"early_auc": "-"}),
        ("H_0 (nats)", {"H_0": "-"}),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(PANEL[0] * 4, PANEL[1] + 0.4))
    sft_end = data.filter(pl.col("regime") == "sft").sort("step").group_by("metric").last()
    for ax, (label, metrics) in zip(axes, panels):
        for regime in data["regime"].unique(maintain_order=True).to_list():
            color = REGIME_PALETTE.get(regime, "#333333")
            for metric, ls in metrics.items():
                d = data.filter((pl.col("regime") == regime) & (pl.col("metric") == metric))
                if regime == "sft+rl":  # continue the sft line
                    d = pl.concat([sft_end.filter(pl.col("metric") == metric).select(d.columns), d])
                d = d.sort("step")
                name = (
                    regime if len(metrics) == 1 else f"{regime} {metric.removeprefix('mean_rho').strip('_') or 'all'}"
                )
                ax.errorbar(
                    d["step"],
                    d["value"],
                    yerr=[(d["value"] - d["lo"]).fill_nan(0).abs(), (d["hi"] - d["value"]).fill_nan(0).abs()],
                    color=color,
                    ls=ls,
                    marker="o",
                    ms=3,
                    lw=1.2,
                    capsize=2,
                    label=name,
                )
        if label == "early AUC of -H_k":
            ax.axhline(0.5, color="#999999", ls=":", lw=0.8)
        ax.set(title=label, xlabel="training step")
        if len(metrics) > 1:  # many lines: the legend goes under the panel, off the data
            ax.legend(fontsize=6, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.3))
        else:
            ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    save(fig, png, pdf)


def fig_selection(data: pl.DataFrame, png, pdf, *, title: str = "Best-of-N: every selector on one pool"):
    """fig_selection: accuracy of every selection rule (rows) at each N (colours), 95% CIs over
    questions; one panel per model x dataset, random and majority as reference lines."""
    apply_style()
    pairs = data.select("model", "dataset").unique(maintain_order=True).rows()
    methods = data["method"].unique(maintain_order=True).to_list()
    ns = sorted(data["N"].unique().to_list())
    fig, axes = plt.subplots(
        1, len(pairs), figsize=(PANEL[0] * len(pairs), 0.22 * len(methods) + 1.2), squeeze=False, sharey=True
    )
    colors = sns.color_palette("viridis", len(ns))
    for ax, (model, dataset) in zip(axes[0], pairs):
        part = data.filter((pl.col("model") == model) & (pl.col("dataset") == dataset))
        for i, n in enumerate(ns):
            d = part.filter(pl.col("N") == n)
            y = [methods.index(m) + (i - (len(ns) - 1) / 2) * 0.18 for m in d["method"]]
            ax.errorbar(
                d["accuracy"],
                y,
                xerr=[(d["accuracy"] - d["lo"]).abs(), (d["hi"] - d["accuracy"]).abs()],
                fmt="o",
                ms=3,
                lw=1,
                capsize=1.5,
                color=colors[i],
                label=f"N = {n}",
            )
        for ref, ls in (("majority", "--"), ("random", ":")):
            r = part.filter((pl.col("method") == ref) & (pl.col("N") == ns[-1]))
            if r.height:
                ax.axvline(r["accuracy"][0], color="#777777", ls=ls, lw=0.8)
        ax.set_yticks(range(len(methods)), methods)
        ax.invert_yaxis()
        ax.set(title=f"{model} / {dataset}", xlabel="accuracy")
    handles, labels = axes[0][0].get_legend_handles_labels()  # one legend, under the panels
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=len(ns), fontsize=7)
    fig.suptitle(title, fontsize=10)
    save(fig, png, pdf)
