"""Rule glue: one module per rule file (``workflow/rules/<module>.smk``), one function per rule,
named as the rule. ``workflow/scripts/<rule>.py`` calls it with the ``snakemake`` object; the
function reads its rule's ``input``, ``output``, ``params``, ``wildcards``, ``threads`` and ``log``
(never the global config), calls the science modules and writes its outputs with provenance.

Only ``generation`` (and the model-building ``toy`` and ``models``) import torch; the analysis
stages run without it. Import a stage module directly; this package imports none of them.

Importing this package from a rule's script bounds the thread pools to the rule's ``threads``
before polars or numpy starts one (both read their limit once, at import): polars would otherwise
take every core of a shared login node whatever the rule asked for.
"""

import os
import sys


def _bound_threads() -> None:
    sm = getattr(sys.modules.get("__main__"), "snakemake", None)
    threads = getattr(sm, "threads", None)
    if threads:
        for var in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "SIAFLOW_THREADS"):
            os.environ[var] = str(max(1, int(threads)))


_bound_threads()
