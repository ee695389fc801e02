"""Every relative link in README.md and docs/*.md resolves, and no doc points outside
the repository (except the PyTorch CPU wheel index in README's install note).

A link is `[text](target)` or `[label]: target` outside fenced code blocks and code
spans. A relative target must name an existing file or folder (relative to the
page); `#anchor` (alone or after a `.md` file) must be a heading of that page under
GitHub's slug rule: the heading's text without its Markdown, lower-cased, every
character that is not a letter, digit, space, `-` or `_` dropped, spaces made `-`,
and `-1`, `-2`, ... appended to repeats.
"""

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The only addresses outside the repository a page may name, and where.
ALLOWED_URLS = {
    "README.md": {"https://download.pytorch.org/whl/cpu"},
    "docs/sweeps.md": {"ray://HOST:PORT"},  # the form of a Ray Client address, no address
}

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s)`'\"<>]+", re.IGNORECASE)


def prose_lines(text):
    """(line number, line) for the lines outside fenced code blocks."""
    fenced = False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield n, line


def slug(heading):
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = text.replace("`", "")
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    kept = []
    for ch in text:
        if ch in " -_" or unicodedata.category(ch)[0] in "LN":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def anchors(page):
    seen = {}
    out = set()
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        k = seen.get(base, 0)
        seen[base] = k + 1
        out.add(base if k == 0 else f"{base}-{k}")
    return out


def links(page):
    """(line number, target) for every link of a page."""
    for n, line in prose_lines(page.read_text(encoding="utf-8")):
        m = REF_LINK.match(line)
        if m:
            yield n, m.group(1)
            continue
        for m in INLINE_LINK.finditer(CODE_SPAN.sub("", line)):
            yield n, m.group(1)


def problems(page, root=ROOT):
    """One line per broken link or outside address of a page; empty when all is well."""
    out = []
    rel = page.relative_to(root).as_posix()
    allowed = ALLOWED_URLS.get(rel, set())
    for n, line in prose_lines(page.read_text(encoding="utf-8")):
        for url in URL.findall(line):
            if url.rstrip(".,;:") not in allowed:
                out.append(f"{rel}:{n}: points outside the repository: {url}")
    for n, target in links(page):
        if not target or re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # empty, or an address (checked above)
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            out.append(f"{rel}:{n}: {target}: no such file {path}")
            continue
        try:
            dest.relative_to(root)
        except ValueError:
            out.append(f"{rel}:{n}: {target}: outside the repository")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            out.append(f"{rel}:{n}: {target}: no heading #{anchor} in {dest.name}")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_resolve_and_stay_inside_the_repository(page):
    found = problems(page)
    assert not found, "\n".join(found)


def test_the_check_finds_broken_links_and_outside_addresses(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text(
        '# Cheaper studies: WSD (`design = "wsd"`)\n\n## Flags\n\n## Flags\n'
    )
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n"
        "[ok](other.md#cheaper-studies-wsd-design--wsd) [ok](other.md#flags-1) [ok](#page)\n"
        "[gone](missing.md) [bad anchor](other.md#nope) [up](../../x.md)\n"
        "see https://example.com/x and `[in code](nowhere.md)`\n"
        "```\n[in a fence](nowhere.md) https://fenced.example\n```\n"
    )
    assert problems(page, root=tmp_path) == [
        "docs/page.md:4: points outside the repository: https://example.com/x",
        "docs/page.md:3: missing.md: no such file missing.md",
        "docs/page.md:3: other.md#nope: no heading #nope in other.md",
        "docs/page.md:3: ../../x.md: no such file ../../x.md",
    ]


def test_slugs_follow_githubs_rule():
    assert (
        slug('Cheaper studies: WSD branching (`design = "wsd"`)')
        == "cheaper-studies-wsd-branching-design--wsd"
    )
    assert slug("summary.json (format_version 1)") == "summaryjson-format_version-1"
    assert slug("`scalinglab report DIR`") == "scalinglab-report-dir"
