"""The documents: every relative link in README.md and docs/ resolves, and the README's example job runs."""

from __future__ import annotations

import re
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from actors.jobs import load_catalog
from actors.sequential import run_sequential

REPO = Path(__file__).resolve().parents[1]
README_LINES = 300  # "a README that reads in 5 minutes"

FENCE = re.compile(r"^(```|~~~)")
# [text](target) and ![alt](target); a target ends at the first space (a title may follow) or closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"`[^`]*`")


def documents(root: Path) -> list[Path]:
    """README.md and every page under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("**/*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans removed (a link in code is not a link)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lowercase, punctuation removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters and digits of every script, and "_"
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a page's headings make; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: Counter[str] = Counter()
    found = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def broken_links(root: Path) -> list[str]:
    """Each relative link of the documents under ``root`` whose file or heading does not exist."""
    broken = []
    for page in documents(root):
        for line in prose_lines(page.read_text(encoding="utf-8")):
            for target in LINK.findall(CODE_SPAN.sub("", line)):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                    continue  # http:, https:, mailto: ...: not a file of this repository
                path_part, _, anchor = target.partition("#")
                where = f"{page.relative_to(root)}: ({target})"
                linked = (page.parent / path_part).resolve() if path_part else page
                if not linked.exists():
                    broken.append(f"{where}: no file {path_part}")
                    continue
                if not linked.is_relative_to(root):
                    broken.append(f"{where}: outside the repository")
                    continue
                if anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
                    broken.append(f"{where}: no heading #{anchor} in {linked.relative_to(root)}")
    return broken


def test_every_relative_link_in_the_documents_resolves() -> None:
    assert broken_links(REPO) == []


def test_the_link_check_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## From deploy to result, without `curl`\n\n## Again\n"
                                            "## Again\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "[ok](docs/a.md) [ok](docs/a.md#from-deploy-to-result-without-curl) [ok](docs/a.md#again-1)\n"
        "[gone](docs/b.md) [no heading](docs/a.md#nowhere) ![img](docs/missing.png) [web](https://example.org/x)\n"
        "`[in code](docs/c.md)`\n```\n[in a block](docs/d.md)\n```\n", encoding="utf-8")
    assert broken_links(tmp_path) == [
        "README.md: (docs/b.md): no file docs/b.md",
        "README.md: (docs/a.md#nowhere): no heading #nowhere in docs/a.md",
        "README.md: (docs/missing.png): no file docs/missing.png",
    ]


@pytest.mark.parametrize(("heading", "anchor"), [
    ("From deploy to result, without curl", "from-deploy-to-result-without-curl"),
    ("`mapreduce run` and `local`", "mapreduce-run-and-local"),
    ("Limits and safety", "limits-and-safety"),
    ("Where the code differs from the shared design", "where-the-code-differs-from-the-shared-design"),
    ("Reports, and no Release (grace)", "reports-and-no-release-grace"),
    ("MR_TIMEOUT_LEASE: 30 s", "mr_timeout_lease-30-s"),
])
def test_anchors_follow_githubs_rules(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_the_readme_is_short_and_links_every_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_LINES
    assert "scripts/demo.sh" in readme and "scripts/test.sh" in readme
    linked = {target.partition("#")[0] for line in prose_lines(readme) for target in LINK.findall(line)}
    pages = {page.relative_to(REPO).as_posix() for page in documents(REPO)[1:]}
    assert pages - linked == set(), "pages under docs/ the README's Documentation list does not link"


def test_the_documents_name_no_internal_issue_numbers() -> None:
    for page in documents(REPO):
        found = re.findall(r"\bissue[ -]?#?\d+", page.read_text(encoding="utf-8"), re.IGNORECASE)
        assert found == [], f"{page.relative_to(REPO)} names {found}: say what the target or change is instead"


def test_the_readmes_example_job_runs_as_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("```python\n") + len("```python\n"):]
    code = block[:block.index("```\n")]
    name = f"readme_job_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = "The cat and THE dog\nthe end\n"
    expected = dict(Counter(text.lower().split()))
    try:
        assert run_sequential("lower_words", text.encode(), modules=(name,)) == expected
        # The engine's path too: map, the declared combiner, finish, and the documented order (most frequent first).
        job = load_catalog((name,)).get("lower_words", {})
        totals = job.partial()
        for line in text.splitlines(keepends=True):
            job.combine(totals, job.map(line, "input"))
        result = job.finish(totals)
        assert result == expected
        assert job.top(result, 2) == [("the", 3), ("and", 1)]
    finally:
        sys.modules.pop(name, None)
        load_catalog.cache_clear()
