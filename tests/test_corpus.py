"""Every real-world message in ../shared/corpus is ingested and accounted for.

The corpus (see its README) holds mail from many clients and deliberately broken MIME. Each file
is one message, except files under `_mbox/` (several messages each). We lay them all out as a
Maildir, run `mailroll ingest --once --json`, and check that it exits 0 and that `messages --json`
lists every one of them, none `failed` (no file in the corpus is so broken that nothing can be
recorded: even the 1-byte file becomes a message with no sender, in the unmatched queue).

The same check by hand: `python scripts/corpus_maildir.py ../shared/corpus /tmp/corpus-maildir`,
then point a config's [mailbox] at it (kind = "maildir") and run `mailroll ingest --once`.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from corpus_maildir import build_maildir  # noqa: E402 - scripts/ is put on sys.path first


def test_whole_corpus_is_accounted_for(campaign, corpus_dir):
    count = build_maildir(corpus_dir, campaign.root / "maildir")
    assert count > 800
    res = campaign.run_process("ingest", "--once", "--json", timeout=900)
    counts = res.json
    assert counts["new"] == count and counts["seen"] == count
    assert counts["failed"] == 0, campaign.run("messages", "--disposition", "failed", "--json").output
    assert counts["attributed"] + counts["unmatched"] + counts["duplicate"] == count

    rows = campaign.messages()
    assert len(rows) == count
    assert {r["disposition"] for r in rows} <= {"attributed", "unmatched", "duplicate"}
    unmatched = campaign.run("unmatched", "--json").json
    assert all(u["reason"] for u in unmatched)
    # a second poll finds nothing new
    assert campaign.ingest()["new"] == 0
