"""Runs the Python of the documentation: every ```python block of README.md and docs/**/*.md.

One test per page: the page's blocks run in order, in one namespace, in a fresh working
directory, on the suite's backend. A block that cannot run here (a download, accelerators,
several hosts) is marked in the Markdown on the line just above its fence:

    <!-- docs-test: skip (downloads the ImageNet weights) -->

and is reported as a skipped test of its own, with that reason. Other fenced blocks (bash,
text, ...) are not run.
"""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
MARKER = re.compile(r"^\s*<!--\s*docs-test:(.*?)-->\s*$")
SKIP = re.compile(r"^\s*skip\s+\((.+)\)\s*$")


def parse_blocks(path):
    """[(first code line number, code, skip reason or None)] of the python blocks of `path`.

    Raises ValueError for a marker that is malformed, not followed by a python block, or an
    unclosed fence, so that a typo cannot silently run or skip a block.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    blocks, pending, index = [], None, 0
    while index < len(lines):
        line = lines[index]
        marker = MARKER.match(line)
        fence = FENCE.match(line)
        if marker:
            if pending is not None:
                raise ValueError(f"{path}:{pending[0]}: a docs-test marker above another marker")
            skip = SKIP.match(marker.group(1))
            if not skip:
                raise ValueError(
                    f"{path}:{index + 1}: write the marker as "
                    f"'<!-- docs-test: skip (the reason) -->', got {line.strip()!r}"
                )
            pending = (index + 1, skip.group(1).strip())
            index += 1
            continue
        if fence:
            indent, ticks, language = fence.groups()
            start, index = index + 1, index + 1
            while index < len(lines) and not lines[index].strip().startswith(ticks):
                index += 1
            if index == len(lines):
                raise ValueError(f"{path}:{start}: a ``` fence that is never closed")
            if language == "python":
                code = "\n".join(
                    text[len(indent) :] if text.startswith(indent) else text
                    for text in lines[start:index]
                )
                blocks.append((start + 1, code, pending[1] if pending else None))
            elif pending is not None:
                raise ValueError(
                    f"{path}:{pending[0]}: a docs-test marker above a {language or 'plain'} block"
                )
            pending = None
            index += 1
            continue
        if line.strip() and pending is not None:
            raise ValueError(f"{path}:{pending[0]}: a docs-test marker not just above a block")
        index += 1
    if pending is not None:
        raise ValueError(f"{path}:{pending[0]}: a docs-test marker at the end of the page")
    return blocks


def _name(path):
    return str(Path(path).relative_to(ROOT))


PAGE_BLOCKS = {_name(page): parse_blocks(page) for page in PAGES}
RUN_PAGES = [name for name, blocks in PAGE_BLOCKS.items() if any(not b[2] for b in blocks)]
SKIPPED = [
    (f"{name}:{line}", reason)
    for name, blocks in PAGE_BLOCKS.items()
    for line, _, reason in blocks
    if reason
]


@pytest.mark.parametrize("page", RUN_PAGES)
def test_page_python_runs(page, tmp_path, monkeypatch):
    """The page's python blocks run in order in one namespace, in an empty directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__docs__"}
    for line, code, reason in PAGE_BLOCKS[page]:
        if reason:
            continue
        # Padded so that a traceback names the page's own line numbers.
        source = "\n" * (line - 1) + code
        exec(compile(source, os.fspath(ROOT / page), "exec"), namespace)


@pytest.mark.parametrize("block, reason", SKIPPED, ids=[block for block, _ in SKIPPED])
def test_skipped_block(block, reason):
    """Each block marked skip, reported with its reason."""
    pytest.skip(f"{block}: {reason}")


def test_markers_and_fences_parse(tmp_path):
    """A malformed or misplaced marker is an error, not a block run or skipped by accident."""
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs-test: skip (a reason) -->\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n"
    )
    assert parse_blocks(page) == [(3, "x = 1", "a reason"), (7, "y = 2", None)]
    for text in (
        "<!-- docs-test: skipp (typo) -->\n```python\nx = 1\n```\n",
        "<!-- docs-test: skip (above bash) -->\n```bash\nls\n```\n",
        "<!-- docs-test: skip (nothing below) -->\n\nsome text\n",
        "```python\nx = 1\n",
    ):
        page.write_text(text)
        with pytest.raises(ValueError):
            parse_blocks(page)
