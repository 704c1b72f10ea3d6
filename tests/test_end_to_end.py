"""The whole workflow on a tiny config (committed toy models), checked against independent
recomputation: Table 1 from the entropy tables, the entropy tables from the raw samples, the
figure data from the definitions, and provenance recorded at every stage."""

import copy
import json
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from recompute import check_entropy_table, check_probe_agreement, check_probe_tables, check_table1

from siaflow.analysis.estimators import alignment_coefficient, conditional_answer_entropy, gold_surprisal
from siaflow.io import read_provenance
from siaflow.keys import checkpoint_positions

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TABLES = ["table1_alignment", "table2_shuffle", "table3_mc_ablation", "table_edis_bestofn", "table_selection"]
TABLES += ["table_probe_agreement", "table_early_exit"]
FIGURES = ["fig1_cumulative_gain", "fig2_auc", "fig3_saturation", "fig4_cumulative_gain_nonaligned"]
FIGURES += ["fig5_auc_nonaligned", "fig_fano", "fig_edis_trajectories", "fig_edis_separation", "fig_selection"]
FIGURES += ["fig_probe_agreement", "fig_early_exit"]


@pytest.fixture(scope="module")
def run(local_run):
    """The tiny workflow run locally (tests/conftest.py: local_run)."""
    return local_run


def test_a_named_target_builds_only_what_it_needs(run):
    out = run["only_fig2"]
    assert "fig2_auc" in out and "table1_alignment" in out
    for unrelated in (
        "table2_shuffle",
        "table3_mc_ablation",
        "fig_fano",
        "fig1_cumulative_gain",
        "report",
        "stride-8/shuffled.parquet",
    ):
        assert unrelated not in out, unrelated
    # the main stride's variants share a job (variants_in_one_job): its shuffled draws come along
    assert "rule continuations_both_variants" in out


def test_one_job_per_variant_when_asked(tmp_path):
    """With sampling.variants_in_one_job off, a target that needs only the original variant
    schedules no shuffled continuations (a dry run)."""
    import subprocess
    import sys

    import yaml
    from conftest import ROOT, tiny_config

    cfg, _ = tiny_config(tmp_path)
    cfg["sampling"]["variants_in_one_job"] = False
    path = tmp_path / "one_per_variant.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "fig2_auc", "--configfile", str(path), "--directory", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "rule continuations:" in out and "continuations_both_variants" not in out and "shuffled" not in out


def test_every_output_exists_and_rerun_is_a_no_op(run):
    r = run["results"]
    for t in TABLES:
        for ext in ("csv", "md", "tex"):
            assert (r / f"tables/{t}.{ext}").stat().st_size > 0, (t, ext)
    for f in FIGURES:
        for ext in ("png", "pdf", "data.csv"):
            assert (r / f"figures/{f}.{ext}").exists(), (f, ext)
    html = (r / "report.html").read_text(errors="ignore")
    for name in TABLES + FIGURES:
        assert name in html, name
    assert "Nothing to be done" in run["rerun"]
    for pdf in (r / "figures").glob("*.pdf"):  # TrueType fonts embedded (upload checkers reject Type 3)
        data = pdf.read_bytes()
        assert b"/FontFile2" in data and b"/Type3" not in data and b"/CreationDate" not in data, pdf.name
    # two shards of 3 questions: 5 questions = shards 0 and 1
    assert sorted(p.name for p in (r / "rollouts/toy-sft/toy-arith").iterdir()) == [
        "shard-0.parquet",
        "shard-1.parquet",
    ]


def test_entropy_table_recomputed_from_raw_samples(run):
    r, cfg = run["results"], run["cfg"]
    for model in cfg["models"]:
        assert pl.read_parquet(r / f"rollouts/{model}/toy-arith/*.parquet").height == 5 * 6  # the EDIS pool
        check_entropy_table(r, cfg, model, "toy-arith", 8)


def test_table1_recomputed_independently(run):
    r = run["results"]
    check_table1(r, run["cfg"], ["toy-arith"], 8)
    table = pl.read_csv(r / "tables/table1_alignment.csv")
    assert table["n_total"].to_list() == [15, 15]
    md = (r / "tables/table1_alignment.md").read_text()
    assert "toy-sft" in md and "mean_rho" in md


def test_figure_data_follow_the_definitions(run):
    r = run["results"]
    # Figs 1 and 4 split the model x dataset pairs by Table 1's mean rho
    t1 = pl.read_csv(r / "tables/table1_alignment.csv")
    f1, f4 = (
        pl.read_csv(r / f"figures/{n}.data.csv", infer_schema_length=None)
        for n in ("fig1_cumulative_gain", "fig4_cumulative_gain_nonaligned")
    )
    aligned = set(t1.filter(pl.col("mean_rho") >= 0.3)["model"])
    assert (set(f1["model"]) if f1.height else set()) == aligned
    assert (set(f4["model"]) if f4.height else set()) == set(t1["model"]) - aligned
    fig1 = pl.concat([f for f in (f1, f4) if f.height], how="vertical_relaxed")
    # normalised gain: 0 at k = 0 and 1 at k = T for every included trajectory, so the means are too
    assert fig1.filter(pl.col("rel_pos") == 0)["mean"].to_list() == pytest.approx(
        [0.0] * fig1.filter(pl.col("rel_pos") == 0).height
    )
    assert fig1.filter(pl.col("rel_pos") == 1)["mean"].to_list() == pytest.approx(
        [1.0] * fig1.filter(pl.col("rel_pos") == 1).height
    )
    assert (fig1["lo"] <= fig1["mean"] + 1e-9).all() and (fig1["mean"] <= fig1["hi"] + 1e-9).all()
    fig2 = pl.concat(
        [
            f
            for f in (
                pl.read_csv(r / f"figures/{n}.data.csv", infer_schema_length=None)
                for n in ("fig2_auc", "fig5_auc_nonaligned")
            )
            if f.height
        ],
        how="vertical_relaxed",
    )
    auc = fig2["auc"].drop_nans().drop_nulls()
    assert ((auc >= 0) & (auc <= 1)).all()
    assert set(fig2["axis"]) == {"absolute", "relative"}
    # AUC at k = 0 recomputed by hand: H_0 is shared by a question's trajectories
    from siaflow.analysis.stats import roc_auc

    for model in run["cfg"]["models"]:
        ent = pl.read_parquet(r / f"entropy/{model}/toy-arith/stride-8/original.parquet").filter(pl.col("k") == 0)
        got = fig2.filter((pl.col("model") == model) & (pl.col("axis") == "absolute") & (pl.col("x") == 0))["auc"][0]
        want = roc_auc(-ent["H"].to_numpy(), ent["correct"].to_numpy())
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)
    fig3 = pl.read_csv(r / "figures/fig3_saturation.data.csv")
    for _, part in fig3.group_by("model"):
        last = part.filter(pl.col("rel_pos") >= 0.9 - 1e-9)["mean"].mean()
        assert part["plateau_level"][0] == pytest.approx(last)


def test_provenance_is_recorded(run):
    r = run["results"]
    prov = read_provenance(next((r / "rollouts/toy-sft/toy-arith").glob("*.parquet")))
    for key in (
        "model",
        "model_path",
        "revision",
        "prompt_template",
        "example_prompt",
        "decoding",
        "seed",
        "n_trajectories",
        "software",
        "entropy_kind",
    ):
        assert prov.get(key) is not None, key
    assert prov["revision"].startswith("sha256:")
    assert prov["decoding"] == run["cfg"]["decoding"]
    cprov = read_provenance(next((r / "continuations/toy-sft/toy-arith/stride-8/original").glob("*.parquet")))
    assert cprov["stride"] == 8 and cprov["n_continuations"] == 6 and cprov["ledger"]["generated_tokens"] > 0
    t1 = json.loads((r / "tables/table1_alignment.provenance.json").read_text())
    assert len(t1["inputs"]) == 2 and all(v["revision"] for v in t1["inputs"].values())


def _alignment_means(ent: pl.DataFrame, pre: bool = False):
    """Mean rho over the defined trajectories and their number: every checkpoint, or (``pre``)
    the checkpoints before the answer begins (k < T and k <= answer_start)."""
    rhos = []
    for _, part in ent.sort("k").group_by("question_id", "trajectory"):
        if pre:
            start = part["answer_start"][0]
            part = part.filter((pl.col("k") < pl.col("T")) & ((pl.col("k") <= start) if start is not None else True))
        rhos.append(alignment_coefficient(part["H"], part["S"], part["c_gold"])[0])
    rhos = np.array(rhos)
    return rhos[~np.isnan(rhos)].mean() if (~np.isnan(rhos)).any() else math.nan, int((~np.isnan(rhos)).sum())


def test_table2_shuffle_recomputed(run):
    r = run["results"]
    t2 = pl.read_csv(r / "tables/table2_shuffle.csv")
    for model in run["cfg"]["models"]:
        o = pl.read_parquet(r / f"entropy/{model}/toy-arith/stride-8/original.parquet")
        s = pl.read_parquet(r / f"entropy/{model}/toy-arith/stride-8/shuffled.parquet")
        row = t2.filter(pl.col("model") == model).row(0, named=True)
        for ent, tag in ((o, "original"), (s, "shuffled")):
            for pre in (False, True):
                mean, n = _alignment_means(ent, pre=pre)
                assert row[f"n_{'pre_' if pre else ''}defined_{tag}"] == n
                if n:
                    assert row[f"mean_rho{'_pre' if pre else ''}_{tag}"] == pytest.approx(mean)
        if row["n_defined_original"] and row["n_defined_shuffled"]:
            assert row["delta_rho"] == pytest.approx(row["mean_rho_shuffled"] - row["mean_rho_original"])
            assert row["delta_rho_lo"] <= row["delta_rho_hi"]
        paired = o.join(s, on=["question_id", "trajectory", "k"], suffix="_s")
        assert paired.height == o.height == s.height
        assert row["mean_delta_H"] == pytest.approx((paired["H_s"] - paired["H"]).mean())
        assert row["mean_delta_S"] == pytest.approx((paired["S_s"] - paired["S"]).mean())
        # k = 0 is an empty prefix: same draws in both variants (same random streams)
        k0 = paired.filter(pl.col("k") == 0)
        assert (k0["H"] == k0["H_s"]).all() and (k0["S"] == k0["S_s"]).all()


def test_table3_is_an_exact_subsample(run):
    r, cfg = run["results"], run["cfg"]
    t3 = pl.read_csv(r / "tables/table3_mc_ablation.csv")
    alpha = cfg["estimation"]["alpha"]
    for model in cfg["models"]:
        roll = pl.read_parquet(r / f"rollouts/{model}/toy-arith/*.parquet").filter(pl.col("trajectory") < 3)
        cont = pl.read_parquet(r / f"continuations/{model}/toy-arith/stride-8/original/*.parquet")
        gold = dict(zip(roll["question_id"], roll["gold"]))
        draws = defaultdict(list)
        for q, j, k, a in (
            cont.filter(pl.col("sample") < 3)
            .sort("sample")
            .select("question_id", "trajectory", "k", "answer")
            .iter_rows()
        ):
            draws[(q, j, k)].append(a)
        rhos = []
        for q, j, T in roll.select("question_id", "trajectory", "T").iter_rows():
            ks = checkpoint_positions(T, 16)
            h = [conditional_answer_entropy(draws[(q, -1 if k == 0 else j, k)]) for k in ks]
            s = [gold_surprisal(draws[(q, -1 if k == 0 else j, k)], gold[q], alpha=alpha)[0] for k in ks]
            c = [draws[(q, -1 if k == 0 else j, k)].count(gold[q]) for k in ks]
            rhos.append(alignment_coefficient(h, s, c)[0])
        rhos = np.array(rhos)
        row = t3.filter(pl.col("model") == model).row(0, named=True)
        assert row["n_defined_ablated"] == (~np.isnan(rhos)).sum()
        if row["n_defined_ablated"]:
            assert row["mean_rho_ablated"] == pytest.approx(rhos[~np.isnan(rhos)].mean())
        assert (row["stride_ablated"], row["K_ablated"]) == (16, 3)
        assert "sub-sample" in row["source"]


def test_fano_data(run):
    from siaflow.analysis.fano import fano_lower_bound

    fano = pl.read_csv(run["results"] / "figures/fig_fano.data.csv")
    assert fano["fano_bound"].to_list() == pytest.approx(list(fano_lower_bound(fano["mean_H"].to_numpy(), 100)))
    assert ((fano["error"] >= 0) & (fano["error"] <= 1)).all()
    assert fano.group_by("model").agg(pl.col("n_checkpoints").sum())["n_checkpoints"].min() > 0


def test_edis_scores_and_best_of_n(run):
    from collections import Counter

    from siaflow.selection.edis import EdisParams, edis_score

    r, cfg = run["results"], run["cfg"]
    e = cfg["edis"]
    params = EdisParams(window=e["window"], tau_burst=e["tau_burst"], tau_rebound=e["tau_rebound"])
    scores = pl.read_parquet(r / "edis/scores.parquet")
    assert {v["n_rollouts"] for v in read_provenance(r / "edis/scores.parquet")["inputs"].values()} == {6}
    assert not scores["approximate"].any()
    table = pl.read_csv(r / "tables/table_edis_bestofn.csv")
    for model in cfg["models"]:
        pool = pl.read_parquet(r / f"rollouts/{model}/toy-arith/*.parquet")
        mine = scores.filter(pl.col("model") == model)
        assert mine.height == pool.height == 30
        joined = pool.join(mine, on=["question_id", "trajectory"], suffix="_s")
        for row in joined.iter_rows(named=True):
            want = edis_score(row["token_entropy"], params)
            assert row["edis"] == pytest.approx(want["edis"]) and row["n_burst"] == want["n_burst"]
            assert row["self_certainty"] == pytest.approx(np.mean(row["token_self_certainty"]))
        # N = pool size: every subset is the whole pool, so random and majority are exact
        row = table.filter((pl.col("model") == model) & (pl.col("N") == 6)).row(0, named=True)
        per_q = pool.group_by("question_id").agg(pl.col("correct").mean())["correct"]
        assert row["random"] == pytest.approx(per_q.mean())
        maj = []
        for _, part in pool.group_by("question_id"):
            votes = Counter(a for a in part["answer"] if a != "NULL")
            if not votes:
                maj.append(0.0)
                continue
            top = max(votes.values())
            winners = [a for a, c in votes.items() if c == top]
            maj.append((part["gold"][0] in winners) / len(winners))
        assert row["majority"] == pytest.approx(np.mean(maj))
    sep = pl.read_csv(r / "figures/fig_edis_separation.auc.csv")
    assert set(sep["score"]) == {"edis", "mean_entropy", "self_certainty"}


def test_report_works_with_directory_and_config_overrides(run, tmp_path):
    """The report rule runs Snakemake itself: from another working directory, with --directory and
    a --config override, it must report this run's outputs under the run's effective config."""
    import subprocess
    import sys

    import yaml
    from conftest import ROOT

    r = run["results"]
    cfg_path = next(p for p in r.parent.glob("*.yaml"))
    before = (r / "report.html").stat().st_mtime
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(ROOT),
        "--cores",
        "1",
        "--configfile",
        str(cfg_path),
        # an override no other rule reads (a prompt no model uses): only the report reruns
        "--config",
        "prompts={report_probe: 'Probe: {question}'}",
        "--forcerun",
        "report",
        str(r / "report.html"),
    ]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (r / "report.html").stat().st_mtime > before
    html = (r / "report.html").read_text(errors="ignore")
    assert "table1_alignment" in html and "fig2_auc" in html
    effective = yaml.safe_load((r / "logs/report.config.yaml").read_text())
    assert effective["prompts"]["report_probe"] == "Probe: {question}" and "toy" in effective["prompts"]
    assert effective["results"] == str(r)
    assert "rule rollouts" not in res.stdout + res.stderr  # nothing else was redone


def test_every_selector_on_one_pool(run):
    """table_selection's pool is the first N trajectories; its DeepConf scores are recomputed from
    the rollouts' token confidences, its Certaindex from the entropy tables, and at N = pool size
    random and the best-confidence pick are recomputed by hand."""
    from siaflow.selection.selectors import deepconf_scores

    r, cfg = run["results"], run["cfg"]
    sel, n_traj = cfg["selection"], cfg["sampling"]["n_trajectories"]
    scores = pl.read_parquet(r / "selection/scores.parquet")
    long = pl.read_csv(r / "tables/table_selection.long.csv")
    assert sorted(set(long["N"])) == [2, 3]
    for model in cfg["models"]:
        pool = pl.read_parquet(r / f"rollouts/{model}/toy-arith/*.parquet").filter(pl.col("trajectory") < n_traj)
        mine = scores.filter(pl.col("model") == model).sort("question_id", "trajectory")
        assert mine.height == pool.height == 5 * n_traj
        ent = pl.read_parquet(r / f"entropy/{model}/toy-arith/stride-8/original.parquet")
        for row in pool.join(mine, on=["question_id", "trajectory"], suffix="_s").iter_rows(named=True):
            want = deepconf_scores(
                row["token_confidence"], window=sel["window"], tail=sel["tail"], bottom_fraction=sel["bottom_fraction"]
            )
            for k, v in want.items():
                assert row[k] == pytest.approx(v, nan_ok=True), (k, row["question_id"], row["trajectory"])
            probes = ent.filter(
                (pl.col("question_id") == row["question_id"])
                & (pl.col("trajectory") == row["trajectory"])
                & (pl.col("k") < pl.col("T"))
            )
            if probes.height:
                assert row["certaindex"] == pytest.approx((1 - probes["H"] / math.log(probes["K"][0])).mean())
        at_pool = long.filter((pl.col("model") == model) & (pl.col("N") == n_traj))
        acc = dict(zip(at_pool["method"], at_pool["accuracy"]))
        assert acc["random"] == pytest.approx(
            mine.group_by("question_id").agg(pl.col("correct").mean())["correct"].mean()
        )
        best = []
        for _, q in mine.group_by("question_id"):
            q = q.filter(pl.col("answer") != "NULL")  # a response without an answer is never picked
            top = q.filter(pl.col("conf_lowest_group") == q["conf_lowest_group"].max())
            best.append(top["correct"].mean() if top.height else 0.0)
        assert acc["pick_conf_lowest"] == pytest.approx(np.mean(best))
    assert read_provenance(r / "selection/scores.parquet")["needs"]["self_certainty"].startswith("full vocabulary")
    data = pl.read_csv(r / "figures/fig_selection.data.csv")
    assert (
        data.select("model", "dataset", "N", "method", "accuracy")
        .sort("model", "N", "method")
        .equals(long.select("model", "dataset", "N", "method", "accuracy").sort("model", "N", "method"))
    )


# A config key, a new value, and the rules whose params hold it: after the edit exactly these
# rules' jobs have changed params (and rerun; what depends on them reruns for its new inputs).
# The report's params are the whole effective config (it reruns `snakemake --report` with it).
PARAM_EDITS = [
    # the probes' K is the continuations' (probe.n_samples: null); the late-rebound threshold is the
    # entropy's resolution at K (analysis.saturation.rebound_threshold: null)
    (
        ("sampling", "n_continuations"),
        5,
        {"continuations_both_variants", "table3_mc_ablation", "probes", "table_probe_agreement", "fig3_saturation"},
    ),
    (("decoding", "temperature"), 0.9, {"rollouts", "continuations_both_variants", "probes"}),
    (("sampling", "batch_rows"), 64, {"rollouts", "continuations_both_variants", "probes"}),
    (("probe", "max_new_tokens"), 3, {"probes", "table_probe_agreement"}),
    (("early_exit", "consecutive"), [2], {"table_early_exit"}),
    (("edis", "tau_burst"), 1.0, {"edis_scores", "fig_edis_trajectories", "table_selection"}),
    (("edis", "n_draws"), 10, {"table_edis_bestofn", "table_selection"}),
    (
        ("analysis", "grid_points"),
        11,
        {
            "fig1_cumulative_gain",
            "fig2_auc",
            "fig3_saturation",
            "fig4_cumulative_gain_nonaligned",
            "fig5_auc_nonaligned",
        },
    ),
    (("datasets", "toy-arith", "answer_space_size"), 50, {"fig_fano"}),
    (("models", "toy-sft", "resources"), {"mem_mb": 3000, "runtime": 90}, set()),
]


def _params_changed(summary: str) -> set[str]:
    """The rules whose outputs `snakemake --summary` marks "params changed" (unlike a dry run, the
    summary checks every job's params, also of jobs that rerun anyway for an upstream change)."""
    rows = [line.split("\t") for line in summary.splitlines()[1:] if line.count("\t") >= 4]
    return {row[2] for row in rows if row[4] == "params changed"} - {"report"}


@pytest.mark.parametrize(
    ("key", "value", "readers"), PARAM_EDITS, ids=lambda x: ".".join(x) if isinstance(x, tuple) else None
)
def test_a_key_reruns_exactly_the_rules_that_read_it(run, tmp_path, key, value, readers):
    cfg = copy.deepcopy(run["cfg"])
    block = cfg
    for k in key[:-1]:
        block = block[k]
    block[key[-1]] = value
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "--summary", "--configfile", str(path), "--directory", str(ROOT)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert _params_changed(res.stdout) == readers, res.stdout[-3000:]


def test_probes_are_forced_answers_stored_like_continuations(run):
    """K probes per checkpoint (k = 0 once per question), each at most probe.max_new_tokens long,
    ended at its answer line; H_k of the probes recomputed from their draws like the full ones'."""
    r, cfg = run["results"], run["cfg"]
    budget, K = cfg["probe"]["max_new_tokens"], cfg["sampling"]["n_continuations"]
    for model in cfg["models"]:
        check_entropy_table(r, cfg, model, "toy-arith", 8, variant="probe")
        probes = pl.read_parquet(r / f"continuations/{model}/toy-arith/stride-8/probe/*.parquet")
        assert probes["n_generated"].max() <= budget
        assert probes.group_by("question_id", "trajectory", "k").len()["len"].unique().to_list() == [K]
        for shard in sorted((r / f"continuations/{model}/toy-arith/stride-8/probe").glob("*.parquet")):
            prov, part = read_provenance(shard), pl.read_parquet(shard)
            assert prov["step"] == "probes" and prov["probe"]["cue"] == cfg["probe"]["cue"]
            assert prov["ledger"]["probes"] == prov["ledger"]["prefixes"] * K == part.height
            assert prov["ledger"]["generated_tokens"] == int(
                (part["n_generated"] + (part["finish_reason"] == "stop") + part["cut"]).sum()
            )


def test_probe_agreement_recomputed_from_raw_draws(run):
    for model in run["cfg"]["models"]:
        check_probe_agreement(run["results"], run["cfg"], model, "toy-arith", 8)
    data = pl.read_csv(run["results"] / "figures/fig_probe_agreement.data.csv")
    table = pl.read_csv(run["results"] / "tables/table_probe_agreement.csv")
    # the figure draws every checkpoint before the end, once
    assert (
        data.group_by("model").agg(pl.col("n").sum()).sort("model")["n"].to_list()
        == table.sort("model")["n_checkpoints"].to_list()
    )


def test_early_exit_recomputed_from_raw_draws(run):
    check_probe_tables(run["results"], run["cfg"], ["toy-arith"], 8)
    table = pl.read_csv(run["results"] / "tables/table_early_exit.csv")
    assert set(table["rule"]) == {"full", "entropy", "consecutive", "dynasor", "budget", "majority", "deepconf"}
    assert pl.read_csv(run["results"] / "figures/fig_early_exit.data.csv").equals(table)


def test_run_summary_counts_what_the_run_drew(run):
    """`snakemake run_summary` builds nothing else, and its counts equal the rollouts and ledgers."""
    r, cfg = run["results"], run["cfg"]
    cfg_path = next(p for p in r.parent.glob("*.yaml"))
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", str(cfg_path), "--directory", str(ROOT)]
    res = subprocess.run([*cmd, "run_summary"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "rule rollouts" not in res.stdout + res.stderr
    summary = json.loads((r / "run_summary.json").read_text())
    N = cfg["sampling"]["n_trajectories"]
    assert len(summary["counts"]) == len(cfg["models"]) * len(cfg["datasets"])
    for row in summary["counts"]:
        roll = pl.read_parquet(r / f"rollouts/{row['model']}/{row['dataset']}/*.parquet")
        traj = roll.filter(pl.col("trajectory") < N)
        assert row["rollouts"] == roll.height and row["rollout_tokens"] == roll["T"].sum()
        assert row["correct_trajectories"] + row["incorrect_trajectories"] == traj.height
        assert row["correct_trajectories"] == traj["correct"].sum()
        entropy = r / f"entropy/{row['model']}/{row['dataset']}/stride-{cfg['sampling']['strides'][0]}/original.parquet"
        assert row["continuation_tokens"] == read_provenance(entropy)["ledger_total"]["generated_tokens"] > 0
    assert set(summary["models"]) == set(cfg["models"]) and summary["seeds"]["sampling"] == cfg["sampling"]["seed"]
    assert summary["decoding"] == cfg["decoding"] | summary["decoding"]
    assert "| model | dataset | questions |" in (r / "run_summary.md").read_text()
