"""The project's own text stays readable: every code block in the docs is closed, and no doc
names a path of a development machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted(
    [REPO / "README.md", REPO / "CHANGELOG.md", *(REPO / "docs").glob("*.md"), *(REPO / "bench").glob("*.md")]
)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_code_block_is_closed(doc):
    fences = [
        n for n, line in enumerate(doc.read_text("utf-8").splitlines(), 1) if line.lstrip().startswith("```")
    ]
    assert len(fences) % 2 == 0, f"{doc.name}: the code block opened on line {fences[-1]} never closes"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_path_of_a_development_machine(doc):
    assert not re.search(r"/work/(?:main|shared|wt-)", doc.read_text("utf-8"))
