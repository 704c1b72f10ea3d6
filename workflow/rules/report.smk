# The cost plan (it needs nothing but the config: run it before submitting anything) and the
# Snakemake HTML report of every table and figure.


rule plan:
    output:
        csv=path(layout.PLAN, ext="csv"),
        md=path(layout.PLAN, ext="md"),
    log:
        log("plan"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        **plan_params(),
    script:
        "../../scripts/plan.py"


# The pilot: one shard of every model on every dataset (rollouts and the main stride's
# continuations), then the plan of the whole grid calibrated by them: response lengths, the
# decoded/naive token ratio and the generation throughput, measured. Price the grid before
# submitting it: `snakemake --profile slurm --configfile my.yaml pilot`.
rule pilot:
    input:
        rollouts=[
            path(layout.ROLLOUTS, model=m, dataset=d, shard=0) for m in MODELS for d in DATASETS
        ],
        continuations=[
            path(layout.CONTINUATIONS, model=m, dataset=d, shard=0, stride=MAIN_STRIDE, variant=v)
            for m in MODELS
            for d in DATASETS
            for v in VARIANTS
        ],
    output:
        csv=path(layout.PILOT_PLAN, ext="csv"),
        md=path(layout.PILOT_PLAN, ext="md"),
    log:
        log("pilot"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        **plan_params(),
    script:
        "../../scripts/pilot.py"


# What the run drew and how it was made (counts, tokens, seconds; data SHA-256, model builds,
# prompts, sampling, seeds): `snakemake run_summary`, a part of `make study-real`.
rule run_summary:
    input:
        data=[path(layout.DATA, dataset=d) for d in DATASETS],
        rollouts=all_shards(layout.ROLLOUTS),
        entropy=entropy_tables(),
    output:
        json=path(layout.RUN_SUMMARY, ext="json"),
        md=path(layout.RUN_SUMMARY, ext="md"),
    log:
        log("run_summary"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        models=MODELS,
        datasets=DATASETS,
        n_trajectories=config["sampling"]["n_trajectories"],
        sampling={**config["sampling"], "stride": MAIN_STRIDE},
        seeds={"sampling": config["sampling"]["seed"], "analysis": config["analysis"]["seed"]},
    script:
        "../../scripts/run_summary.py"


# The report runs Snakemake itself (`snakemake --report`), on the submit host, on this very
# workflow: the same Snakefile, working directory and effective config (config files and --config
# overrides merged), so that it finds the outputs this run made.
rule report:
    input:
        ANALYSIS_TARGETS,
    output:
        path(layout.REPORT),
    log:
        log("report"),
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        snakefile=workflow.main_snakefile,
        directory=os.getcwd(),
        effective_config=config,
        targets=ANALYSIS_TARGETS,
    script:
        "../../scripts/report.py"
