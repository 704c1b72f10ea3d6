"""Rule glue: one module per rule file (``workflow/rules/<module>.smk``), one function per rule,
named as the rule. ``workflow/scripts/<rule>.py`` calls it with the ``snakemake`` object; the
function reads its rule's ``input``, ``output``, ``params``, ``wildcards``, ``threads`` and ``log``
(never the global config), calls the science modules and writes its outputs with provenance.

Only ``generation`` (and the model-building ``toy`` and ``models``) import torch; the analysis
stages run without it. Import a stage module directly; this package imports none of them.
"""
