"""Rule glue: one module per rule file (``workflow/rules/<module>.smk``), one function per rule,
named as the rule. ``scripts/<rule>.py`` calls it with the ``snakemake`` object; the
function reads its rule's ``input``, ``output``, ``params``, ``wildcards``, ``threads`` and ``log``
(never the global config), calls the science modules and writes its outputs with provenance.

Only ``generation`` (and the model-building ``toy`` and ``models``) import torch; the analysis
stages run without it. Import a stage module directly; this package imports none of them, and no
stage module changes the process's state when imported.

A rule's script first calls ``job_setup`` (this module imports nothing heavy), then imports its
stage: polars and numpy read their thread limits once, at import, and polars would otherwise take
every core of a shared login node whatever the rule asked for.
"""

import os

THREAD_VARIABLES = (
    "POLARS_MAX_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "SIAFLOW_THREADS",
)


def job_setup(sm, *, hub_offline: bool = False) -> None:
    """Prepare this job's process before its stage is imported: every thread pool bounded to the
    rule's ``threads``; with ``hub_offline`` (generation jobs), the Hugging Face hub client set
    offline, because every model is local by the time such a job runs (download_model, build_model,
    a toy model, or a directory of the user's) and a compute node often cannot reach the hub (the
    client reads these variables once, when it is imported)."""
    threads = getattr(sm, "threads", None)
    if threads:
        os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(max(1, int(threads)))))
    if hub_offline:
        os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
