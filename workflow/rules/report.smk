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
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        models=config["models"],
        datasets=config["datasets"],
        sampling=config["sampling"],
        plan=config["plan"],
        edis=config["edis"],
        mc_ablation=config["mc_ablation"],
    script:
        "../scripts/plan.py"


# The report runs Snakemake itself (the interpreter running this workflow), on the submit host.
rule report:
    input:
        ANALYSIS_TARGETS,
    output:
        path(layout.REPORT),
    log:
        log("report"),
    localrule: True
    conda:
        "../envs/analysis.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        python=sys.executable,
        configfiles=" ".join(f"--configfile {f}" for f in workflow.overwrite_configfiles),
        targets=" ".join(ANALYSIS_TARGETS),
    shell:
        "{params.python} -m snakemake --nolock {params.targets} --report {output} {params.configfiles} > {log} 2>&1"
