"""One function per workflow rule: read inputs, call the pure science, write outputs with
provenance. ``scripts/<rule>.py`` is a one-line call into here with the ``snakemake`` object, so
the same code runs (and is tested) outside Snakemake with any object that has the same fields.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import traceback
from pathlib import Path

import polars as pl

from siaflow import io, metrics
from siaflow.resume import clear_parts, run_in_parts


@contextlib.contextmanager
def logging_to(sm):
    """Send stdout/stderr of a rule to its ``log:`` file (appending, so resumed jobs keep history)."""
    logs = list(getattr(sm, "log", []) or [])
    if not logs:
        yield
        return
    Path(logs[0]).parent.mkdir(parents=True, exist_ok=True)
    with open(logs[0], "a", buffering=1) as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        try:
            yield
        except Exception:
            traceback.print_exc(file=fh)  # the log says why the job failed, not only Snakemake's stderr
            raise


def _threads(sm) -> None:
    import torch

    torch.set_num_threads(max(1, int(getattr(sm, "threads", 1))))


def _extractor(dataset_spec: dict, preamble: str = ""):
    from siaflow.answers import extract_answer

    return functools.partial(extract_answer, answer_type=dataset_spec["answer_type"], preamble=preamble,
                             last_number_fallback=dataset_spec.get("last_number_fallback", True))


def _answer_final(dataset_spec: dict, preamble: str = ""):
    from siaflow.answers import answer_is_final

    return functools.partial(answer_is_final, answer_type=dataset_spec["answer_type"], preamble=preamble)


def response_rules(cfg, model: str, dataset: str, example_prompt: str) -> dict:
    """How a response of ``model`` on ``dataset`` is read and where it ends: its answer extractor,
    its early-stop test (None when ``sampling.stop_at_answer`` is off) and its prompt's stop strings.
    A prompt that leaves a ``<think>`` section open (R1-style chat templates) starts the response
    inside it."""
    from siaflow.answers import THINK_OPEN, leaves_think_open
    from siaflow.datasets import prompt_for

    dspec = cfg["datasets"][dataset]
    template = cfg["prompts"][prompt_for(cfg["models"][model], dspec["answer_type"])]
    preamble = THINK_OPEN if leaves_think_open(example_prompt) else ""
    return {"extract": _extractor(dspec, preamble),
            "answer_final": _answer_final(dspec, preamble) if cfg["sampling"]["stop_at_answer"] else None,
            "stop": tuple(template.get("stop", ())) if isinstance(template, dict) else (),
            "preamble": preamble}


def _backend(model_spec: dict, config: dict):
    from siaflow.backends import make_backend

    return make_backend(model_spec.get("backend", "transformers"), model_spec["path"],
                        revision=model_spec.get("revision"), dtype=model_spec.get("dtype", "auto"),
                        batch_rows=config["sampling"]["batch_rows"], share_rows=config["sampling"]["share_rows"])


# --------------------------------------------------------------------------------------------
def train_toy_model(sm) -> None:
    from siaflow.config import toy_models
    from siaflow.toy import ToyTrainConfig, train_toy_model as train

    with logging_to(sm):
        spec = toy_models(sm.config)[sm.wildcards.toy_model]
        cfg = ToyTrainConfig(regime=spec["toy"]["regime"], seed=spec["toy"].get("seed", 0),
                             threads=int(sm.threads), **sm.config.get("toy_training", {}))
        print(train(cfg, sm.output[0]))


def build_model(sm) -> None:
    from siaflow.models import build_model as build

    with logging_to(sm):
        _threads(sm)
        print(build(sm.params.spec, sm.output[0]))


def download_dataset(sm) -> None:
    """Fetch a hub dataset's parquet files and keep them, with where they came from."""
    import shutil

    from siaflow.datasets import fetch_hub_files

    with logging_to(sm):
        spec = sm.config["datasets"][sm.wildcards.dataset]
        files, source = fetch_hub_files(spec)
        out = Path(sm.output[0])
        out.mkdir(parents=True, exist_ok=True)
        for f, rel in zip(files, source["files"]):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, out / rel)
        io.write_json(source, out / "source.json")
        print(f"downloaded {source}")


def prepare_dataset(sm) -> None:
    import json

    from siaflow.datasets import load_dataset, local_files

    with logging_to(sm):
        name = sm.wildcards.dataset
        spec = sm.config["datasets"][name]
        raw_files, source = None, None
        if spec["source"] == "hub":
            raw = Path(sm.input.raw[0])
            source = json.loads((raw / "source.json").read_text())
            raw_files = [raw / f for f in source["files"]]
        elif spec["source"] == "local":
            raw_files, source = local_files(spec)
        df = load_dataset(name, spec, raw_files)
        io.write_parquet(df, sm.output[0], io.provenance(step="prepare_dataset", dataset=name, spec=spec, source=source))
        print(f"prepared {df.height} questions of {name}")


def n_rollouts(cfg) -> int:
    """Trajectories sampled per question: N for SIA, or the larger Best-of-N pool of EDIS. The
    first N are the same either way (per-trajectory random streams)."""
    return max(cfg["sampling"]["n_trajectories"], cfg.get("edis", {}).get("pool_size", 0))


def sia_trajectories(frame, cfg):
    """The trajectories that get checkpoint continuations: the first ``sampling.n_trajectories``."""
    return frame.filter(pl.col("trajectory") < cfg["sampling"]["n_trajectories"])


def _shard_questions(sm) -> tuple[pl.DataFrame, tuple[int, int]]:
    from siaflow.datasets import shard_slice

    df = pl.read_parquet(sm.input.data)
    start, stop = shard_slice(df.height, sm.config["sampling"]["shard_size"], int(sm.wildcards.shard))
    return df.slice(start, stop - start), (start, stop)


def rollouts(sm) -> None:
    from siaflow.backends import Decoding
    from siaflow.datasets import build_prompts, prompt_for
    from siaflow.rollouts import run_rollouts

    with logging_to(sm):
        _threads(sm)
        cfg, model, dataset = sm.config, sm.wildcards.model, sm.wildcards.dataset
        mspec, dspec = cfg["models"][model], cfg["datasets"][dataset]
        questions, qrange = _shard_questions(sm)
        template = cfg["prompts"][prompt_for(mspec, dspec["answer_type"])]
        backend = _backend(mspec, cfg)
        prompts, prompt_ids = build_prompts(backend, template, questions)
        decoding = Decoding(**cfg["decoding"])
        s = cfg["sampling"]
        n_traj, rules = n_rollouts(cfg), response_rules(cfg, model, dataset, prompts[0])

        def work(idx):
            idx = list(idx)
            df = run_rollouts(backend, questions[idx], [prompts[i] for i in idx], decoding=decoding,
                              n_trajectories=n_traj, seed=s["seed"], extract=rules["extract"],
                              prompt_ids=[prompt_ids[i] for i in idx], answer_final=rules["answer_final"],
                              stop=rules["stop"])
            return df, {"trajectories": df.height}

        identity = {"questions": questions["question_id"].to_list(), "prompts": prompts, "decoding": decoding.as_dict(),
                    "seed": s["seed"], "n_rollouts": n_traj, "model": mspec["path"], "revision": backend.info.revision,
                    "stop_at_answer": s["stop_at_answer"], "stop": list(rules["stop"])}
        df, _ = run_in_parts(list(range(questions.height)), work, output=sm.output[0],
                             chunk=s["parts"]["questions"], identity=identity)
        df = df.with_columns(model=pl.lit(model), dataset=pl.lit(dataset))
        prov = io.provenance(step="rollouts", model=model, model_path=mspec["path"], revision=backend.info.revision,
                             backend=vars(backend.info), regime=mspec["regime"], dataset=dataset, shard=int(sm.wildcards.shard),
                             question_range=list(qrange), prompt_template=template, example_prompt=prompts[0],
                             decoding=decoding.as_dict(), seed=s["seed"], n_trajectories=s["n_trajectories"],
                             n_rollouts=n_traj, stop_at_answer=s["stop_at_answer"], stop=list(rules["stop"]),
                             response_preamble=rules["preamble"], entropy_kind=backend.info.entropy_kind,
                             finish_reasons=dict(df["finish_reason"].value_counts().iter_rows()))
        io.write_parquet(df, sm.output[0], prov)
        clear_parts(sm.output[0])
        print(f"rollouts: {df.height} trajectories, accuracy {df['correct'].mean():.3f}, "
              f"mean T {df['T'].mean():.1f}, finish reasons {prov['finish_reasons']}")


def continuations(sm) -> None:
    """K continuations of every checkpoint of a shard: one variant (``continuations``), or the
    original then the shuffled with one backend (``continuations_both_variants``)."""
    with logging_to(sm):
        _threads(sm)
        cfg, model, dataset = sm.config, sm.wildcards.model, sm.wildcards.dataset
        both = "shuffled" in sm.output.keys()
        stride = int(sm.params.stride) if both else int(sm.wildcards.stride)
        roll = sia_trajectories(pl.read_parquet(sm.input.rollouts), cfg)
        backend = _backend(cfg["models"][model], cfg)
        if both:
            original = _continue_variant(sm, cfg, backend, roll, stride, "original", sm.output.original, None)
            _continue_variant(sm, cfg, backend, roll, stride, "shuffled", sm.output.shuffled, original)
        else:
            shared = pl.read_parquet(sm.input.original) if sm.input.get("original") else None
            _continue_variant(sm, cfg, backend, roll, stride, sm.wildcards.variant, sm.output[0], shared)


def _continue_variant(sm, cfg, backend, roll, stride: int, variant: str, output: str, shared_k0):
    from siaflow.backends import Decoding
    from siaflow.rollouts import run_continuations

    dataset, s = sm.wildcards.dataset, cfg["sampling"]
    rules = response_rules(cfg, sm.wildcards.model, dataset, roll["prompt"][0] if roll.height else "")
    df, ledger = run_continuations(backend, roll, stride=stride, n_continuations=s["n_continuations"],
                                   decoding=Decoding(**cfg["decoding"]), seed=s["seed"], variant=variant,
                                   extract=rules["extract"], output=output,
                                   part_prefixes=s["parts"]["prefixes"], shared_k0=shared_k0,
                                   answer_final=rules["answer_final"], stop=rules["stop"])
    prov = {**io.read_provenance(sm.input.rollouts), **io.provenance(
        step="continuations", stride=stride, variant=variant, n_continuations=s["n_continuations"], ledger=ledger)}
    io.write_parquet(df, output, prov)
    clear_parts(output)
    print(f"continuations ({variant}): {ledger}")
    return df


def entropy(sm) -> None:
    from siaflow.estimators import entropy_table

    with logging_to(sm):
        cfg = sm.config
        roll = sia_trajectories(pl.scan_parquet(list(sm.input.rollouts)), cfg).select(
            "question_id", "trajectory", "T", "correct", "gold")
        samples = pl.scan_parquet(list(sm.input.continuations)).select("question_id", "trajectory", "k", "sample", "answer")
        table = entropy_table(samples, roll, alpha=cfg["estimation"]["alpha"]).with_columns(
            model=pl.lit(sm.wildcards.model), dataset=pl.lit(sm.wildcards.dataset),
            stride=pl.lit(int(sm.wildcards.stride)), variant=pl.lit(sm.wildcards.variant)).collect()
        first = io.read_provenance(sm.input.continuations[0])
        prov = {**first, **io.provenance(step="entropy", alpha=cfg["estimation"]["alpha"],
                                         shards=[str(p) for p in sm.input.continuations],
                                         ledger_total=_sum_ledgers(sm.input.continuations))}
        io.write_parquet(table, sm.output[0], prov)
        print(f"entropy table: {table.height} checkpoints")


def _sum_ledgers(paths) -> dict:
    total: dict = {}
    for p in paths:
        for k, v in io.read_provenance(p).get("ledger", {}).items():
            total[k] = total.get(k, 0) + v
    return total


# --------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------


def _h_column(cfg) -> str:
    return {"plugin": "H", "miller_madow": "H_mm"}[cfg["estimation"]["entropy_estimator"]]


def _load_entropy(paths) -> pl.LazyFrame:
    return pl.concat([pl.scan_parquet(p) for p in paths], how="vertical_relaxed")


def _analysis_provenance(sm, **extra) -> dict:
    cfg = sm.config
    per_input = {}
    for p in (str(p) for p in sm.input if "/entropy/" in str(p)):
        prov = io.read_provenance(p)
        per_input[str(p)] = {k: prov.get(k) for k in ("model", "model_path", "revision", "regime", "dataset",
                                                      "prompt_template", "decoding", "seed", "n_trajectories",
                                                      "n_continuations", "stride", "variant", "alpha", "entropy_kind",
                                                      "software", "siaflow_commit", "ledger_total")}
    return io.provenance(step=sm.rule, inputs=per_input, estimation=cfg["estimation"],
                         analysis=cfg.get("analysis", {}), **extra)


def _figure_provenance(sm, prov: dict) -> None:
    """A figure's provenance sits beside its data: <figure>.data.provenance.json."""
    io.write_json(prov, Path(sm.output.data).with_suffix(".provenance.json"))


def _with_model_info(df: pl.DataFrame, cfg) -> pl.DataFrame:
    info = pl.DataFrame({"model": list(cfg["models"]),
                         "regime": [m["regime"] for m in cfg["models"].values()],
                         "family": [m.get("family", "") for m in cfg["models"].values()]})
    return info.join(df, on="model", how="inner", maintain_order="right").select(
        "model", "regime", "family", *[c for c in df.columns if c != "model"])


def table1(sm) -> None:
    from siaflow.tables import write_table

    with logging_to(sm):
        cfg = sm.config
        traj = metrics.trajectory_alignment(_load_entropy(sm.input.entropy), h=_h_column(cfg)).collect()
        io.write_parquet(traj, sm.output.trajectories, _analysis_provenance(sm))
        t1 = _with_model_info(metrics.table1_alignment(traj.lazy()), cfg)
        write_table(t1, csv=sm.output.csv, md=sm.output.md, tex=sm.output.tex, prov=_analysis_provenance(sm),
                    title="Table 1: SIA alignment coefficient (Pearson of H_k and S_k per trajectory)")
        print(t1)


def _analysis(cfg):
    a = cfg.get("analysis", {})
    return dict(n_boot=a["bootstrap"], ci=a["ci"], seed=a["seed"])


def _selected_entropy(sm) -> tuple[pl.LazyFrame, str]:
    """Entropy rows of the (model, dataset) pairs this figure shows: aligned ones (mean rho at or
    above ``analysis.aligned_threshold`` in Table 1) for Figs 1-2, the others for Figs 4-5."""
    selection = sm.params.selection
    thr = sm.config["analysis"]["aligned_threshold"]
    aligned, nonaligned = metrics.split_by_alignment(pl.read_csv(sm.input.table1), thr)
    pairs = aligned if selection == "aligned" else nonaligned
    op = ">=" if selection == "aligned" else "<"
    return metrics.restrict(_load_entropy(sm.input.entropy), pairs), f"mean rho {op} {thr}", len(pairs)


def _empty_selection(sm, title: str, label: str, columns: list[str]) -> None:
    from siaflow import plots

    pl.DataFrame(schema={c: pl.String for c in columns}).write_csv(sm.output.data)
    plots.empty_figure(sm.output.png, sm.output.pdf, title,
                       f"No model x dataset has {label} in Table 1\n(analysis.aligned_threshold)")
    _figure_provenance(sm, _analysis_provenance(sm, selection=label, empty=True))


def cumulative_gain_figure(sm) -> None:
    """Fig 1 (aligned models) and Fig 4 (non-aligned models)."""
    from siaflow import plots

    with logging_to(sm):
        cfg = sm.config
        ent, label, n_pairs = _selected_entropy(sm)
        title = f"Normalised cumulative information gain ({label})"
        if n_pairs == 0:
            return _empty_selection(sm, title, label, ["model", "dataset", "correct", "rel_pos", "mean", "lo", "hi"])
        grid = metrics.relative_grid(cfg["analysis"]["grid_points"])
        data = metrics.cumulative_gain_curves(ent, h=_h_column(cfg), grid=grid, **_analysis(cfg))
        data = _with_model_info(data, cfg)
        data.write_csv(sm.output.data)
        plots.fig_cumulative_gain(data, sm.output.png, sm.output.pdf, title=title)
        _figure_provenance(sm, _analysis_provenance(sm, selection=label))


def auc_figure(sm) -> None:
    """Fig 2 (aligned models) and Fig 5 (non-aligned models)."""
    from siaflow import plots

    with logging_to(sm):
        cfg = sm.config
        ent, label, n_pairs = _selected_entropy(sm)
        title = f"Early separability: AUC of -H_k for correctness ({label})"
        if n_pairs == 0:
            return _empty_selection(sm, title, label, ["model", "dataset", "axis", "x", "auc", "lo", "hi"])
        grid = metrics.relative_grid(cfg["analysis"]["grid_points"])
        stride = int(cfg["sampling"]["strides"][0])
        absolute, relative = metrics.auc_curves(ent, h=_h_column(cfg), stride=stride, grid=grid, **_analysis(cfg))
        data = pl.concat([absolute.with_columns(axis=pl.lit("absolute"), x=pl.col("at_k").cast(pl.Float64)).drop("at_k"),
                          relative.with_columns(axis=pl.lit("relative"), x=pl.col("rel_pos")).drop("rel_pos")])
        _with_model_info(data, cfg).write_csv(sm.output.data)
        plots.fig_auc(absolute, relative, sm.output.png, sm.output.pdf, title=title)
        _figure_provenance(sm, _analysis_provenance(sm, selection=label))


def fig3(sm) -> None:
    from siaflow import plots

    with logging_to(sm):
        cfg = sm.config
        a = cfg["analysis"]
        curve, summary = metrics.saturation_summary(
            _load_entropy(sm.input.entropy), h=_h_column(cfg), grid=metrics.relative_grid(a["grid_points"]),
            plateau_fraction=a["saturation"]["plateau_fraction"], late_from=a["saturation"]["late_from"],
            rebound_threshold=a["saturation"]["rebound_threshold"], **_analysis(cfg))
        data = curve.join(summary, on=["model", "dataset"], how="left")
        _with_model_info(data, cfg).write_csv(sm.output.data)
        regimes = {m: s["regime"] for m, s in cfg["models"].items()}
        plots.fig_saturation(curve, summary, regimes, sm.output.png, sm.output.pdf)
        _figure_provenance(sm, _analysis_provenance(sm))


def table2(sm) -> None:
    from siaflow.tables import write_table

    with logging_to(sm):
        cfg = sm.config
        t2 = metrics.shuffle_comparison(_load_entropy(sm.input.original), _load_entropy(sm.input.shuffled), h=_h_column(cfg))
        t2 = _with_model_info(t2, cfg)
        write_table(t2, csv=sm.output.csv, md=sm.output.md, tex=sm.output.tex, prov=_analysis_provenance(sm),
                    title="Table 2: shuffle-prefix ablation (alignment with the generated prefix tokens permuted)")
        print(t2)


def table3(sm) -> None:
    """Alignment under a coarser stride and fewer samples. The coarse estimates come from the
    stored per-sample answers of the source run (a finer stride, or a run at the coarse stride),
    taking its first K' draws and the coarse checkpoints: no new generation."""
    from siaflow.estimators import entropy_table
    from siaflow.tables import write_table

    with logging_to(sm):
        cfg = sm.config
        mc = cfg["mc_ablation"]
        alpha, h = cfg["estimation"]["alpha"], _h_column(cfg)
        original = _load_entropy(sm.input.entropy)
        rows = []
        for model in cfg["models"]:
            for dataset in cfg["datasets"]:
                roll = sia_trajectories(pl.scan_parquet([p for p in sm.input.rollouts if f"/{model}/{dataset}/" in p]),
                                        cfg).select("question_id", "trajectory", "T", "correct", "gold")
                samples = pl.scan_parquet([p for p in sm.input.continuations if f"/{model}/{dataset}/" in p]).select(
                    "question_id", "trajectory", "k", "sample", "answer")
                sub = metrics.subsample_continuations(samples, roll, stride=mc["stride"], n_continuations=mc["n_continuations"])
                ent = entropy_table(sub, roll, alpha=alpha).with_columns(model=pl.lit(model), dataset=pl.lit(dataset))
                rows.append(metrics.table1_alignment(metrics.trajectory_alignment(ent, h=h)))
        ablated = pl.concat(rows).select("model", "dataset", pl.col("mean_rho").alias("mean_rho_ablated"),
                                         pl.col("se_rho").alias("se_rho_ablated"),
                                         pl.col("n_defined").alias("n_defined_ablated"))
        orig = metrics.table1_alignment(metrics.trajectory_alignment(original, h=h)).select(
            "model", "dataset", pl.col("mean_rho").alias("mean_rho_original"), pl.col("se_rho").alias("se_rho_original"),
            pl.col("n_defined").alias("n_defined_original"), "n_total")
        t3 = orig.join(ablated, on=["model", "dataset"]).with_columns(
            stride_original=pl.lit(int(cfg["sampling"]["strides"][0])), K_original=pl.lit(cfg["sampling"]["n_continuations"]),
            stride_ablated=pl.lit(mc["stride"]), K_ablated=pl.lit(mc["n_continuations"]),
            source=pl.lit(sm.params.source))
        t3 = _with_model_info(t3, cfg)
        write_table(t3, csv=sm.output.csv, md=sm.output.md, tex=sm.output.tex, prov=_analysis_provenance(sm, mc_ablation=mc),
                    title="Table 3: Monte-Carlo ablation (coarser stride, fewer continuations)")
        print(t3)


def fig_fano(sm) -> None:
    from siaflow import plots

    with logging_to(sm):
        cfg = sm.config
        space = {d: metrics_answer_space(spec) for d, spec in cfg["datasets"].items()}
        data = metrics.fano_data(_load_entropy(sm.input.entropy), h=_h_column(cfg), answer_space=space,
                                 n_bins=cfg["analysis"]["fano_bins"], **_analysis(cfg))
        _with_model_info(data, cfg).write_csv(sm.output.data)
        plots.fig_fano(data, sm.output.png, sm.output.pdf)
        _figure_provenance(sm, _analysis_provenance(sm))


def metrics_answer_space(spec: dict) -> int:
    """|A| for Fano's bound: the dataset's ``answer_space_size``, else 6 for options (A-E and
    NULL); numeric datasets must say it (there is no natural size)."""
    if spec.get("answer_space_size"):
        return int(spec["answer_space_size"])
    if spec["answer_type"] == "option":
        return 6
    raise ValueError("fig_fano needs datasets.<name>.answer_space_size for numeric datasets")


# --------------------------------------------------------------------------------------------
# EDIS
# --------------------------------------------------------------------------------------------


def _edis_params(cfg):
    from siaflow.edis import EdisParams

    e = cfg["edis"]
    return EdisParams(window=e["window"], tau_burst=e["tau_burst"], tau_rebound=e["tau_rebound"])


def edis_scores(sm) -> None:
    """Per-sample scores (EDIS and its parts, mean entropy, self-certainty) of every sampled
    response, as one parquet a user can join to their own data on (model, dataset, question_id,
    trajectory)."""
    from siaflow.edis import trajectory_scores

    with logging_to(sm):
        cfg = sm.config
        roll = pl.concat([pl.read_parquet(p) for p in sm.input.rollouts], how="vertical_relaxed")
        scores = trajectory_scores(roll, _edis_params(cfg))
        provs = [io.read_provenance(p) for p in sm.input.rollouts]
        kinds = {p.get("entropy_kind", "exact") for p in provs}
        scores = scores.with_columns(approximate=pl.lit(kinds != {"exact"}))
        prov = io.provenance(step="edis_scores", edis=cfg["edis"], entropy_kinds=sorted(kinds),
                             inputs={str(p): {k: v.get(k) for k in ("model", "revision", "dataset", "shard", "decoding", "seed",
                                                                      "n_rollouts", "entropy_kind", "prompt_template")}
                                     for p, v in zip(sm.input.rollouts, provs)})
        io.write_parquet(scores, sm.output[0], prov)
        print(f"scored {scores.height} responses; approximate: {kinds != {'exact'}}")


def table_edis_bestofn(sm) -> None:
    from siaflow.edis import METHODS, best_of_n
    from siaflow.tables import write_table

    with logging_to(sm):
        cfg = sm.config
        e, a = cfg["edis"], cfg["analysis"]
        scores = pl.read_parquet(sm.input.scores)
        long = best_of_n(scores, n_values=e["n_values"], n_draws=e["n_draws"], seed=a["seed"], n_boot=a["bootstrap"], ci=a["ci"])
        long.write_csv(sm.output.long)
        wide = long.pivot(on="method", index=["model", "dataset", "N", "n_questions"], values="accuracy").select(
            "model", "dataset", "N", "n_questions", *METHODS)
        wide = _with_model_info(wide, cfg)
        write_table(wide, csv=sm.output.csv, md=sm.output.md, tex=sm.output.tex,
                    prov=io.provenance(step="table_edis_bestofn", edis=e, analysis=a, scores=io.read_provenance(sm.input.scores)),
                    title="Best-of-N accuracy by selection rule (mean over random N-subsets of each question's pool)")
        print(wide)


def fig_edis_trajectories(sm) -> None:
    from siaflow import plots
    from siaflow.edis import spike_positions

    with logging_to(sm):
        cfg = sm.config
        params = _edis_params(cfg)
        per_class = cfg["edis"]["example_trajectories"]
        roll = pl.concat([pl.read_parquet(p).select("model", "dataset", "question_id", "trajectory", "correct", "token_entropy")
                          for p in sm.input.rollouts], how="vertical_relaxed")
        rows = []
        for (model, dataset), part in roll.group_by("model", "dataset", maintain_order=True):
            for correct in (True, False):
                # per class, the responses with the most spikes, one per question (a confident model
                # repeats the same trace), ties by id: deterministic, and they show the patterns
                cand = part.filter(pl.col("correct") == correct)
                ranked = sorted(cand.iter_rows(named=True), key=lambda r: (
                    -sum(map(len, spike_positions(r["token_entropy"] or [], params))), r["question_id"], r["trajectory"]))
                chosen, seen = [], set()
                for r in ranked:
                    if r["question_id"] not in seen and len(chosen) < per_class:
                        seen.add(r["question_id"])
                        chosen.append(r)
                for r in chosen:
                    h = r["token_entropy"] or []
                    burst, rebound = spike_positions(h, params)
                    for t, v in enumerate(h):
                        rows.append({"model": model, "dataset": dataset, "question_id": r["question_id"],
                                     "trajectory": r["trajectory"], "correct": correct, "t": t, "H": float(v),
                                     "burst": bool(t in set(burst.tolist())), "rebound": bool(t in set(rebound.tolist()))})
        data = pl.DataFrame(rows)
        data.write_csv(sm.output.data)
        plots.fig_edis_trajectories(data, sm.output.png, sm.output.pdf, params=params)
        _figure_provenance(sm, io.provenance(step="fig_edis_trajectories", edis=cfg["edis"]))


def fig_edis_separation(sm) -> None:
    from siaflow import plots

    with logging_to(sm):
        cfg = sm.config
        scores = pl.read_parquet(sm.input.scores)
        data = scores.select("model", "dataset", "question_id", "trajectory", "correct", "edis", "mean_entropy", "self_certainty")
        aucs = []
        for (model, dataset), part in data.group_by("model", "dataset", maintain_order=True):
            for score, sign in (("edis", -1), ("mean_entropy", -1), ("self_certainty", 1)):
                aucs.append({"model": model, "dataset": dataset, "score": score,
                             "auc": metrics.roc_auc(sign * part[score].to_numpy(), part["correct"].to_numpy()),
                             "n_correct": int(part["correct"].sum()), "n_incorrect": int((~part["correct"]).sum())})
        auc = pl.DataFrame(aucs)
        data.write_csv(sm.output.data)
        auc.write_csv(sm.output.auc)
        plots.fig_edis_separation(data, auc, sm.output.png, sm.output.pdf)
        _figure_provenance(sm, io.provenance(step="fig_edis_separation", edis=cfg["edis"]))


def plan(sm) -> None:
    """Write the cost plan and print it to the terminal (it is what a user reads before submitting)."""
    from siaflow.plan import cost_plan, ledger_calibration
    from siaflow.tables import to_markdown

    calibration = ledger_calibration(sm.config["results"])
    df = cost_plan(sm.config, calibration)
    with logging_to(sm):
        io.write_text(df.write_csv(), sm.output.csv)
        md = ("**Cost plan** (assumes {mean_trace_tokens} generated tokens per trace and {tokens_per_second} "
              "generated tokens per GPU-second)").format(**sm.config["plan"])
        if calibration:
            md += (f"; calibrated by the token ledgers of {calibration['*']['shards']} continuation shards already "
                   f"in {sm.config['results']} (decoded / naive tokens: {calibration['*']['ratio']:.3f} over all models)")
        md += "\n\n" + to_markdown(df, digits=3 if calibration else 1)
        io.write_text(md, sm.output.md)
        print(md)
    print(md, file=sys.__stdout__)


def run(name: str, sm) -> None:
    """Entry point for ``scripts/*.py``: fail with the rule's name and a clean message."""
    try:
        globals()[name](sm)
    except Exception as exc:  # re-raise with context; the traceback goes to the rule's log and stderr
        print(f"siaflow: rule {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise
