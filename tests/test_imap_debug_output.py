"""imaplib's protocol trace: off unless the ``imapclient.imaplib`` logger would print it.

IMAPClient turns imaplib's debug level up and drops the text at the default log level, which made
imaplib format a repr() of every message body for nothing (most of a bulk ingest's CPU time).
Whoever raises that logger to DEBUG still gets the full trace.
"""

from __future__ import annotations

import logging

from fixtures.mail import build_mail

from ingest.config import Limits
from ingest.db import open_connection
from ingest.sources.imap import ImapSource

TAIYUAN = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"


def _fetch_all(campaign) -> list:
    cfg = campaign.config()
    conn = open_connection(campaign.db_path)
    with ImapSource(cfg.mailbox, Limits(), campaign.root / "spool") as src:
        got = list(src.fetch_new(conn))
    return got


def _deliver(campaign, dovecot) -> None:
    dovecot.append(
        campaign.imap_user, build_mail(TAIYUAN, "材料", [("附件.bin", b"MAILROLL-BODY" * 4000)]).as_bytes()
    )


def test_no_protocol_trace_is_even_formatted_at_the_default_log_level(
    imap_campaign, dovecot, caplog, monkeypatch
):
    from imapclient import imapclient

    _deliver(imap_campaign, dovecot)  # (the test's own IMAP client traces as shipped)
    formatted: list[str] = []
    monkeypatch.setattr(
        imapclient.IMAPlibLoggerAdapter,
        "debug",
        lambda self, msg, *a, **kw: formatted.append(msg),
        raising=False,
    )
    caplog.set_level(logging.INFO)
    assert len(_fetch_all(imap_campaign)) == 1
    assert formatted == []


def test_protocol_trace_with_the_body_when_its_logger_is_at_debug(imap_campaign, dovecot, caplog):
    _deliver(imap_campaign, dovecot)
    caplog.set_level(logging.DEBUG, logger="imapclient.imaplib")
    assert len(_fetch_all(imap_campaign)) == 1
    trace = [r.getMessage() for r in caplog.records if r.name == "imapclient.imaplib"]
    assert any("MAILROLL-BODY" in line or "TUFJTFJPTEwtQk9EW" in line for line in trace)
