"""Figures of the probe and early-exit study (fig_probe_agreement, fig_early_exit), in the style
of ``siaflow.outputs.plots``; each draws the data frame the workflow saves beside it."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib import ticker

from siaflow.outputs.plots import PANEL, apply_style, plt, save

RULE_COLORS = {
    "entropy": "#1f77b4",
    "consecutive": "#2ca02c",
    "dynasor": "#ff7f0e",
    "budget": "#9467bd",
    "deepconf": "#d62728",
}
SOURCE_STYLE = {"full": "-", "probe": "--", "confidence": "-"}


def _panels(pairs: list, height: float = PANEL[1]):
    fig, axes = plt.subplots(1, len(pairs), figsize=(PANEL[0] * len(pairs), height), squeeze=False)
    return fig, axes[0]


def fig_probe_agreement(points: pl.DataFrame, table: pl.DataFrame, png, pdf):
    """H_k from probes against H_k from full continuations at every checkpoint before the end, one
    panel per model x dataset: a point per distinct pair, its area the number of checkpoints;
    the diagonal is perfect agreement, and each panel names r and the token ratio."""
    apply_style()
    pairs = table.select("model", "dataset").rows()
    fig, axes = _panels(pairs, height=PANEL[0])
    for ax, (model, dataset) in zip(axes, pairs):
        part = points.filter((pl.col("model") == model) & (pl.col("dataset") == dataset))
        row = table.filter((pl.col("model") == model) & (pl.col("dataset") == dataset)).row(0, named=True)
        top = max(float(part["H_full"].max() or 0), float(part["H_probe"].max() or 0), 0.1) * 1.05
        ax.plot([0, top], [0, top], color="#777777", lw=0.8, ls=":")
        size = 4 + 60 * np.sqrt(part["n"].to_numpy() / max(1, part["n"].max()))
        ax.scatter(part["H_full"], part["H_probe"], s=size, alpha=0.5, color="#1f77b4", lw=0)
        ax.set(xlim=(0, top), ylim=(0, top), xlabel="H_k, full continuations", ylabel="H_k, forced-answer probes")
        ax.set_title(
            f"{model} / {dataset}\nr = {row['r_H']:.2f} [{row['r_H_lo']:.2f}, {row['r_H_hi']:.2f}], "
            f"tokens x{row['token_ratio']:.2f}"
        )
    save(fig, png, pdf)


def fig_early_exit(table: pl.DataFrame, png, pdf):
    """Accuracy against tokens (relative to the full trajectories) of every exit rule as its
    threshold sweeps, 95% CIs over questions; one panel per model x dataset. The full trajectory
    and the majority vote are the reference points; right of the dotted line exiting costs more
    than it saves."""
    apply_style()
    pairs = table.select("model", "dataset").unique(maintain_order=True).rows()
    fig, axes = _panels(pairs, height=PANEL[1] + 0.6)
    for ax, (model, dataset) in zip(axes, pairs):
        part = table.filter((pl.col("model") == model) & (pl.col("dataset") == dataset))
        for (rule, source), d in part.group_by("rule", "source", maintain_order=True):
            if rule in ("full", "majority"):
                ax.plot(d["rel_tokens"], d["accuracy"], "k*" if rule == "full" else "kX", ms=7, label=rule)
                continue
            d = d.sort("rel_tokens")
            ax.errorbar(
                d["rel_tokens"],
                d["accuracy"],
                yerr=[(d["accuracy"] - d["accuracy_lo"]).abs(), (d["accuracy_hi"] - d["accuracy"]).abs()],
                xerr=[(d["rel_tokens"] - d["rel_tokens_lo"]).abs(), (d["rel_tokens_hi"] - d["rel_tokens"]).abs()],
                fmt="o",
                ls=SOURCE_STYLE.get(source, "-"),
                ms=3,
                lw=1,
                elinewidth=0.6,
                capsize=1.2,
                color=RULE_COLORS.get(rule, "#333333"),
                label=f"{rule} ({source})",
            )
        ax.axvline(1.0, color="#777777", ls=":", lw=0.8)
        ax.set(title=f"{model} / {dataset}", xlabel="tokens / full trajectories", ylabel="accuracy")
        ax.set_xscale("log", base=2)  # ticks at 1/4, 1/2, 1, 2, 4, ... read as plain numbers
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncols=4, fontsize=7)
    save(fig, png, pdf)
