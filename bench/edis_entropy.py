"""How far the EDIS table moves with the token entropy it reads (``edis.token_entropy``).

The EDIS papers do not say whether H_t is the entropy of the distribution a token was drawn from
(``sampled``: temperature, then top-p) or of the whole temperature-scaled vocabulary (``full``),
and EDIS's thresholds are absolute. This scores every response of a finished run both ways, with
the run's own EDIS and bootstrap settings (from its ``table_edis_bestofn`` provenance), and prints
the mean token-entropy gap, the EDIS table under each, and their differences. Run on demand:

    .venv/bin/python bench/edis_entropy.py results/smollm2

Nothing is written; the run's results are read only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from siaflow import io  # noqa: E402
from siaflow.selection import edis  # noqa: E402


def main(results: Path) -> None:
    prov = json.loads((results / "tables" / "table_edis_bestofn.provenance.json").read_text())
    e, boot = prov["params"]["edis"], prov["params"]["bootstrap"]
    e = {**io.read_provenance(results / "edis" / "scores.parquet")["edis"], **e}
    roll = pl.concat([pl.read_parquet(p) for p in sorted((results / "rollouts").glob("*/*/shard-*.parquet"))])
    gap = roll.select(
        (pl.col("token_entropy_full").explode() - pl.col("token_entropy").explode()).mean().alias("gap")
    ).item()
    print(f"{results}: {roll.height} responses; mean per-token H_full - H_sampled = {gap:.3f} nats")
    tables = {}
    for kind in edis.ENTROPY_COLUMNS:
        params = edis.EdisParams.of({**e, "token_entropy": kind})
        scores = edis.trajectory_scores(roll, params, source=str(results / "rollouts"))
        long = edis.best_of_n(
            scores,
            n_values=e["n_values"],
            n_draws=e["n_draws"],
            seed=boot["seed"],
            n_boot=boot["n_boot"],
            ci=boot["ci"],
        )
        tables[kind] = long.select("model", "dataset", "N", "method", pl.col("accuracy").alias(kind))
        spikes = scores.select((pl.col("n_burst") + pl.col("n_rebound")).mean()).item()
        print(f"  {kind:8}: mean spikes per response {spikes:.2f}, mean EDIS {scores['edis'].mean():.3f}")
    both = tables["sampled"].join(tables["full"], on=["model", "dataset", "N", "method"])
    both = both.with_columns(delta=pl.col("full") - pl.col("sampled"))
    methods = [m for m in edis.METHODS if m in set(both["method"])]
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=250, float_precision=3):
        for col in ("sampled", "full", "delta"):
            print(f"{col} (accuracy{', full - sampled' if col == 'delta' else ''}):")
            print(
                both.pivot(on="method", index=["model", "dataset", "N"], values=col).select(
                    "model", "dataset", "N", *methods
                )
            )
    print(f"largest |full - sampled| accuracy: {both['delta'].abs().max():.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
