# GPU rules (on CPU for the toy world): N trajectories per question, then K continuations of
# every checkpoint prefix. One job per (model, dataset, shard[, stride, variant]); the main
# stride's two variants run in one job (`continuations_both_variants`): one engine start.
# A model with `generations` samples nothing: rollouts and continuations read its files
# (`own`; docs/own-generations.md), and a target that needs draws they lack stops, saying so.
OWN = siaflow.inputs.generations


rule rollouts:
    input:
        data=rules.prepare_dataset.output[0],
        model=model_input,
        own=lambda wc: OWN.rollout_files(config, wc.model, wc.dataset),
    output:
        path(layout.ROLLOUTS),
    log:
        log("rollouts/{model}/{dataset}/shard-{shard}"),
    conda:
        generation_env
    threads: generation_threads
    resources:
        **generation_resources(runtime=60),
    params:
        **generation_params(ROLLOUT_SAMPLING, n_rollouts=siaflow.config.n_rollouts(config)),
    script:
        "../../scripts/rollouts.py"


rule continuations:
    input:
        rollouts=rules.rollouts.output[0],
        model=model_input,
        # the shuffled variant reuses the original's empty-prefix (k = 0) draws
        original=lambda wc: (
            [path(layout.CONTINUATIONS, **{**dict(wc.items()), "variant": "original"})]
            if wc.variant == "shuffled"
            else []
        ),
        own=lambda wc: OWN.continuation_files(
            config, wc.model, wc.dataset, int(wc.stride), wc.variant
        ),
    output:
        path(layout.CONTINUATIONS),
    log:
        log("continuations/{model}/{dataset}/stride-{stride}/{variant}/shard-{shard}"),
    wildcard_constraints:
        variant="|".join(VARIANTS),  # the probe variant: rule probes
    conda:
        generation_env
    threads: generation_threads
    resources:
        **generation_resources(runtime=120),
    params:
        **generation_params(
            CONTINUATION_SAMPLING, stride=lambda wc: int(wc.stride), variant=lambda wc: wc.variant
        ),
    script:
        "../../scripts/continuations.py"


# The main stride needs both variants (Table 2): one job, one engine start, and the shuffled
# variant takes the original's empty-prefix draws from memory. Other strides (the Monte-Carlo
# ablation's own run) need only the original, from `continuations` above. A named target that
# needs only the original then builds the shuffled variant too; `sampling.variants_in_one_job:
# false` keeps one job per variant.
if config["sampling"]["variants_in_one_job"]:

    ruleorder: continuations_both_variants > continuations

    rule continuations_both_variants:
        input:
            rollouts=rules.rollouts.output[0],
            model=model_input,
        output:
            original=path(layout.CONTINUATIONS, stride=MAIN_STRIDE, variant="original"),
            shuffled=path(layout.CONTINUATIONS, stride=MAIN_STRIDE, variant="shuffled"),
        log:
            log(
                f"continuations/{{model}}/{{dataset}}/stride-{MAIN_STRIDE}/both-variants/shard-{{shard}}"
            ),
        wildcard_constraints:
            # checkpoints need the original only; imported generations give the original only
            model=OWN.sampled_pattern(config["models"]),
        conda:
            generation_env
        threads: generation_threads
        resources:
            **generation_resources(runtime=120),
        params:
            **generation_params(CONTINUATION_SAMPLING, stride=MAIN_STRIDE),
        script:
            "../../scripts/continuations_both_variants.py"


# Forced-answer probes (docs/early-exit.md): the checkpoint prefix, an answer cue, K short samples.
# Stored like the full continuations (variant `probe`), so rule entropy makes their H_k.
rule probes:
    input:
        rollouts=rules.rollouts.output[0],
        model=model_input,
        own=lambda wc: OWN.continuation_files(
            config, wc.model, wc.dataset, int(wc.stride), PROBE_VARIANT
        ),
    output:
        path(layout.CONTINUATIONS, variant=PROBE_VARIANT),
    log:
        log("continuations/{model}/{dataset}/stride-{stride}/probe/shard-{shard}"),
    conda:
        generation_env
    threads: generation_threads
    resources:
        **generation_resources(runtime=60),
    params:
        **generation_params(CONTINUATION_SAMPLING, stride=lambda wc: int(wc.stride), probe=PROBE),
    script:
        "../../scripts/probes.py"
