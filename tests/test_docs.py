"""The docs a user reads: the README fits a screen or two, every rule is documented, and every
link between the pages (README, docs/, config/README.md) reaches a file and a heading that exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "config/README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)}


def test_the_readme_fits_two_screens():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_every_rule_is_documented():
    rules = set()
    for smk in [ROOT / "workflow/Snakefile", *(ROOT / "workflow/rules").glob("*.smk")]:
        text = smk.read_text()
        rules |= set(re.findall(r"^\s*rule (\w+):", text, flags=re.M))
        rules |= {b for _, b in re.findall(r"^use rule (\w+) as (\w+)", text, flags=re.M)}
    docs = "\n".join(p.read_text() for p in PAGES)
    assert len(rules) > 25
    assert not sorted(r for r in rules if f"`{r}`" not in docs and r != "all")


def test_links_between_pages_reach_a_file_and_a_heading():
    bad = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                bad.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not bad, "\n".join(bad)
