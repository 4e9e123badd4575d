"""A database written by the release before campaigns opens and is migrated in place.

tests/fixtures/data/old-db/ was made by scripts/make_old_db.py running the code of commit
371a723 (see expected.json "commit"): three messages ingested, one assigned by hand, a unit
exempted, receipts and the 'before-3d' reminders sent. The current code must conclude what that
code concluded, keep the staff decisions, and send nothing twice.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from ingest.db import MIGRATIONS

OLD = Path(__file__).resolve().parent / "fixtures" / "data" / "old-db"


def contract_view(rows: list[dict]) -> list[dict]:
    """What CONTRACT.md fixes of `status --json`."""
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "state": r["state"],
            "late": r["late"],
            "items": {k: {f: v[f] for f in ("state", "late", "reason")} for k, v in r["items"].items()},
        }
        for r in rows
    ]


@pytest.fixture
def old(campaign, smtp_server):
    expected = json.loads((OLD / "expected.json").read_text("utf-8"))
    shutil.copy(OLD / "mailroll.db", campaign.db_path)
    campaign.configure(smtp=smtp_server.config())
    campaign.smtp = smtp_server
    return campaign, expected


def test_old_database_is_migrated_in_place_and_concludes_the_same(old):
    campaign, expected = old
    before = sqlite3.connect(campaign.db_path).execute("PRAGMA user_version").fetchone()[0]
    assert before < len(MIGRATIONS), "the fixture predates the campaign migration"

    rows = campaign.run("status", "--json").json
    # the one rule changed since (issue 19): an exempt unit's state is "exempt", not "missing"
    then = [{**r, "state": "exempt"} if r.get("exempt") else r for r in expected["status"]]
    assert contract_view(rows) == contract_view(then)
    assert {r["id"]: r["exempt"] for r in rows}["jinzhong-kjj"] is True, "the old exempt decision holds"
    conn = sqlite3.connect(campaign.db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("SELECT count(*) FROM overrides WHERE campaign IS NULL").fetchone()[0] == 2
    conn.close()

    seen = {m["message_id"]: (m["unit"], m["disposition"]) for m in campaign.run("messages", "--json").json}
    assert seen == {m["message_id"]: (m["unit"], m["disposition"]) for m in expected["messages"]}
    assert {m["campaign"] for m in campaign.run("messages", "--json").json} == {"default"}

    # the reminders and receipts the old code sent are not sent again
    assert expected["remind_again"] == []
    campaign.run("remind", "--now", "2022-06-23T11:00:00+08:00")
    campaign.run("receipts", "--now", "2022-06-20T11:00:00+08:00")
    assert campaign.smtp.messages == []
    # the next stage is due as usual, about the same campaign
    due = campaign.run("remind", "--now", "2022-06-25T10:00:00+08:00", "--dry-run", "--json").json
    assert {r["stage"] for r in due} == {"before-1d"} and len(due) == len(expected["status"]) - 2
