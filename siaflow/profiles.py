"""`snakemake --profile slurm` and `--profile local` from the checkout's root (`make profiles`).

Snakemake looks a profile name up in the working directory, then in the user's and the site's
configuration folders (``~/.config/snakemake`` on Linux), never in ``profiles/``. This links each of
the checkout's ``profiles/<name>`` there under its own name, and never replaces what is already
there: a profile of that name that is not this checkout's is left as it is (and reported), so
``--profile <name>`` keeps meaning the user's own; this checkout's is then ``--profile profiles/<name>``.
siaflow's own settings are in ``profiles/default``, the workflow profile Snakemake reads beside the
Snakefile on every run, so they apply with any cluster profile.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("local", "slurm")


def profile_dir() -> Path:
    """Where Snakemake looks up a profile by name for this user (its own lookup's folder)."""
    from snakemake.common import get_appdirs

    return Path(get_appdirs().user_config_dir)


def install(root: Path = ROOT, into: Path | None = None) -> list[str]:
    """Link ``root/profiles/<name>`` into ``into`` (the user's profile folder) for each profile not
    already there; one line per profile saying what was done."""
    into = into or profile_dir()
    into.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in PROFILES:
        target, link = (root / "profiles" / name).resolve(), into / name
        if link.is_symlink() and link.resolve() == target:
            lines.append(f"{link} -> {target} (already)")
        elif link.exists() or link.is_symlink():
            lines.append(
                f"{link} exists and is not this checkout's: left as it is. `snakemake --profile {name}` uses "
                f"it (with siaflow's profiles/default on top); this checkout's is --profile profiles/{name}"
            )
        else:
            link.symlink_to(target, target_is_directory=True)
            lines.append(f"{link} -> {target}")
    return lines


if __name__ == "__main__":
    print("\n".join(install()))
    sys.exit(0)
