"""The SQLite schema, the whole of it in one place so a reader sees every table at once, as
the versioned migrations ``ingest.db.open_connection`` applies in order.

Two families of tables:

* facts, written by ``ingest`` and never changed afterwards: ``messages``, ``parts``,
  ``links``, ``mailbox_state``, and the search index ``message_search``;
* conclusions and staff decisions, written by ``reconcile``: ``attributions`` (recomputable),
  ``overrides`` and ``audit_log`` (staff decisions), ``outbox`` (notices, receipts and reminders
  sent), ``bounces``, ``service_state`` (heartbeat). Attributions, overrides, outbox rows and the
  status cache name the campaign they are about (migration 6).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ingest import search_index

# Each migration is SQL, or a function for one that needs Python (filling a search index).
MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    # 1: the first schema
    """
    CREATE TABLE mailbox_state (
        source TEXT NOT NULL,              -- Mailbox.source_name, e.g. imap:user@host:993/INBOX
        uidvalidity INTEGER,
        last_uid INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (source)
    );

    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,              -- where it came from (Mailbox.source_name)
        source_key TEXT NOT NULL,          -- unique within the source: 'UIDVALIDITY:UID' or Maildir base name
        message_id TEXT,                   -- Message-ID header, without <>; NULL when absent
        content_sha256 TEXT,               -- sha256 of the raw message (or of its parts when streamed)
        status TEXT NOT NULL,              -- 'recorded' | 'duplicate' | 'failed'
        duplicate_of INTEGER REFERENCES messages(id),
        error TEXT,                        -- why it failed (status 'failed') or a note
        attempts INTEGER NOT NULL DEFAULT 1,
        from_addr TEXT,                    -- lower-cased address of From
        from_name TEXT,
        reply_to TEXT,
        to_addrs TEXT,                     -- JSON list
        subject TEXT,                      -- decoded
        date_header TEXT,                  -- the sender's Date, as sent (never used for lateness)
        received_at TEXT NOT NULL,         -- server arrival time, RFC 3339 UTC
        size INTEGER,
        headers TEXT,                      -- JSON: selected headers (auto-submitted, in-reply-to, ...)
        forwarded_from TEXT,               -- JSON list of addresses of forwarded messages' senders
        body_text TEXT,                    -- decoded text body (first 64 KiB), for links and bounces
        defects TEXT,                      -- JSON list of parser defects
        ingested_at TEXT NOT NULL,
        UNIQUE (source, source_key)
    );
    CREATE INDEX messages_message_id ON messages(message_id);
    CREATE INDEX messages_received ON messages(received_at);

    CREATE TABLE parts (
        id INTEGER PRIMARY KEY,
        message INTEGER NOT NULL REFERENCES messages(id),
        parent INTEGER REFERENCES parts(id), -- the archive or forwarded message it came out of
        seq INTEGER NOT NULL,              -- order within the message
        origin TEXT NOT NULL,              -- 'attachment' | 'archive' | 'forwarded' | 'link'
        location TEXT NOT NULL,            -- human path: 'files.zip/统计表.xlsx'
        filename TEXT,                     -- decoded original name (display only, never a path)
        declared_type TEXT,                -- Content-Type as sent
        sniffed_type TEXT,                 -- detected from the content, e.g. 'xlsx', 'pdf', 'mp4'
        kind TEXT NOT NULL,                -- statistics | report | video | image | archive | message | other
        sha256 TEXT,                       -- content address under storage.files (NULL when not kept)
        size INTEGER,
        facts TEXT,                        -- JSON: what the check measured (see docs/FACTS.md)
        error TEXT                         -- why it could not be kept or checked, in words
    );
    CREATE INDEX parts_message ON parts(message);
    CREATE INDEX parts_sha ON parts(sha256);

    CREATE TABLE links (
        id INTEGER PRIMARY KEY,
        message INTEGER NOT NULL REFERENCES messages(id),
        url TEXT NOT NULL,
        host TEXT,
        provider TEXT,                     -- '网易超大附件', 'QQ中转站', '百度网盘', ...
        filename TEXT,                     -- name shown next to the link, when there is one
        status TEXT NOT NULL,              -- 'recorded' | 'downloaded' | 'not-allowed' | 'failed'
        part INTEGER REFERENCES parts(id), -- the downloaded file, once fetched
        error TEXT
    );
    CREATE INDEX links_message ON links(message);

    CREATE TABLE attributions (
        message INTEGER PRIMARY KEY REFERENCES messages(id),
        unit TEXT,                         -- roster id, NULL when unmatched
        method TEXT,                       -- 'address' | 'domain' | 'name' | 'forwarded' | 'manual'
        reason TEXT,                       -- why (for unmatched: why not)
        decided_at TEXT NOT NULL
    );
    CREATE INDEX attributions_unit ON attributions(unit);

    CREATE TABLE overrides (
        id INTEGER PRIMARY KEY,
        action TEXT NOT NULL,              -- 'assign' | 'accept' | 'reject' | 'exempt' | 'extend'
        unit TEXT,
        item TEXT,
        message INTEGER REFERENCES messages(id),
        value TEXT,                        -- e.g. the extended deadline
        note TEXT,
        actor TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT,
        revoked_by TEXT
    );

    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        unit TEXT,
        detail TEXT,                       -- JSON
        note TEXT
    );

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,                -- 'receipt' | 'reminder'
        unit TEXT,
        stage TEXT,                        -- reminders: 'before-3d', 'after-1', ...
        answers INTEGER REFERENCES messages(id), -- receipts: the message answered
        to_addrs TEXT NOT NULL,            -- JSON list
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        smtp_message_id TEXT NOT NULL,     -- our Message-ID, to match bounces and replies
        status TEXT NOT NULL,              -- 'sending' | 'sent' | 'failed' | 'unknown'
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created_at TEXT NOT NULL,
        sent_at TEXT
    );
    CREATE UNIQUE INDEX outbox_reminder_once ON outbox(unit, stage) WHERE kind = 'reminder';
    CREATE UNIQUE INDEX outbox_receipt_once ON outbox(answers) WHERE kind = 'receipt';
    CREATE INDEX outbox_msgid ON outbox(smtp_message_id);

    CREATE TABLE bounces (
        message INTEGER PRIMARY KEY REFERENCES messages(id),
        outbox INTEGER REFERENCES outbox(id),
        recipient TEXT,
        status TEXT,                       -- DSN status, e.g. 5.1.1
        diagnostic TEXT
    );

    CREATE TABLE service_state (
        key TEXT PRIMARY KEY,              -- 'last_poll', 'last_error', 'pid', ...
        value TEXT,
        updated_at TEXT NOT NULL
    );
    """,
    # 2: reconcile's cache of derived status (recomputed when facts, overrides, roster or config change)
    """
    CREATE TABLE reconcile_state (
        key TEXT PRIMARY KEY,              -- 'status_fingerprint', 'version:attributions', ...
        value TEXT
    );

    CREATE TABLE unit_status (
        pos INTEGER PRIMARY KEY,           -- roster order
        unit TEXT NOT NULL,                -- roster id
        state TEXT NOT NULL,               -- 'complete' | 'incomplete' | 'missing'
        json TEXT NOT NULL                 -- the `status --json` object of the unit
    );

    -- Any write to the facts or the staff's decisions bumps 'version:data', so a cached status
    -- knows it is stale with one look-up.
    INSERT INTO reconcile_state (key, value) VALUES ('version:data', 0);
    CREATE TRIGGER messages_insert_version AFTER INSERT ON messages BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER messages_update_version AFTER UPDATE ON messages BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER messages_delete_version AFTER DELETE ON messages BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER parts_insert_version AFTER INSERT ON parts BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER parts_update_version AFTER UPDATE ON parts BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER parts_delete_version AFTER DELETE ON parts BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER links_insert_version AFTER INSERT ON links BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER links_update_version AFTER UPDATE ON links BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER links_delete_version AFTER DELETE ON links BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER attributions_insert_version AFTER INSERT ON attributions BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER attributions_update_version AFTER UPDATE ON attributions BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER attributions_delete_version AFTER DELETE ON attributions BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER overrides_insert_version AFTER INSERT ON overrides BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER overrides_update_version AFTER UPDATE ON overrides BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    CREATE TRIGGER overrides_delete_version AFTER DELETE ON overrides BEGIN
        UPDATE reconcile_state SET value = value + 1 WHERE key = 'version:data';
    END;
    """,
    # 3: bounded work: failures that are not retried by themselves, and the poison guard
    """
    -- 0: failed for good (a time or memory limit, or the poison guard) until `mailroll retry`
    ALTER TABLE messages ADD COLUMN retry INTEGER NOT NULL DEFAULT 1;

    -- a message a poll started reading and has not recorded yet; `started` counts the polls that
    -- died while reading it (3: it is recorded as failed, and the polls go past it)
    CREATE TABLE reading (
        source TEXT NOT NULL,
        source_key TEXT NOT NULL,
        started INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (source, source_key)
    );
    """,
    # 4: how far the sender of each attribution is believed (reconcile/attribute.py sender_trust)
    """
    ALTER TABLE attributions ADD COLUMN trust TEXT; -- 'registered' | 'domain' | 'thread' | 'staff' | 'named'
    """,
    # 5: raw messages kept as evidence (ingest/raw.py)
    """
    ALTER TABLE messages ADD COLUMN raw_sha256 TEXT;   -- its raw copy in storage.files/raw (NULL: none)
    ALTER TABLE messages ADD COLUMN raw_headers BLOB;  -- the header block as served, always
    CREATE INDEX messages_raw ON messages(raw_sha256);
    """,
    # 6: campaigns. Facts stay once per message; conclusions name their campaign. Rows written
    # before campaigns existed keep campaign NULL: they belong to the campaign with id 'default'
    # (the old [campaign] form), or to the only campaign (ingest.config.Config.legacy_campaign).
    # Attributions and the status cache are conclusions: recomputed on first use.
    """
    ALTER TABLE attributions ADD COLUMN campaign TEXT;   -- campaign id; NULL: none (other, bounce, unsure)
    ALTER TABLE attributions ADD COLUMN scope TEXT;      -- why this campaign (or why none)
    CREATE INDEX attributions_campaign ON attributions(campaign, unit);
    ALTER TABLE overrides ADD COLUMN campaign TEXT;      -- the campaign the decision is about
    ALTER TABLE outbox ADD COLUMN campaign TEXT;         -- the campaign the mail is about
    DROP INDEX outbox_reminder_once;
    CREATE UNIQUE INDEX outbox_reminder_once ON outbox(coalesce(campaign, ''), unit, stage)
        WHERE kind = 'reminder';
    CREATE UNIQUE INDEX outbox_notice_once ON outbox(coalesce(campaign, ''), unit) WHERE kind = 'notice';
    DROP TABLE unit_status;
    CREATE TABLE unit_status (
        campaign TEXT NOT NULL,            -- campaign id
        pos INTEGER NOT NULL,              -- roster order
        unit TEXT NOT NULL,                -- roster id
        state TEXT NOT NULL,               -- 'complete' | 'incomplete' | 'missing'
        json TEXT NOT NULL,                -- the `status --json` object of the unit
        PRIMARY KEY (campaign, pos)
    );
    DELETE FROM reconcile_state WHERE key IN ('attribution_inputs', 'status_fingerprint');
    """,
    # 7: the search index of messages (ingest/search_index.py), filled with those recorded before
    search_index.create_and_fill,
    # 8: answers staff saved to reuse (reconcile/outgoing/replies.py); one reply per question
    """
    CREATE TABLE saved_answers (
        name TEXT PRIMARY KEY,             -- what staff call it: 模板下载, 视频时长
        text TEXT NOT NULL,
        saved_by TEXT NOT NULL,
        saved_at TEXT NOT NULL,
        used INTEGER NOT NULL DEFAULT 0    -- replies that used it
    );
    CREATE UNIQUE INDEX outbox_reply_once ON outbox(answers) WHERE kind = 'reply';
    """,
]
