"""The IMAP source against a real Dovecot: incremental polls, arrival times, no side effects on
the mailbox, UIDVALIDITY changes, big messages streamed per part, post actions, IMAP ID, errors."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from fixtures.mail import build_mail

from ingest.config import Limits
from ingest.db import open_connection
from ingest.sources.base import MailboxError
from ingest.sources.imap import ImapSource, StreamDecoder

TAIYUAN = "太原市科学技术局 <tykjj@taiyuan.gov.cn>"
DATONG = "大同市科学技术局 <dtkjj2022@163.com>"


def raw_mail(from_=TAIYUAN, subject="2022年科技活动周材料", **kw) -> bytes:
    return build_mail(from_, subject, **kw).as_bytes()


def source_for(c, **limits) -> ImapSource:
    cfg = c.config()
    return ImapSource(
        cfg.mailbox, Limits(**limits) if limits else cfg.limits, c.root / "spool", attempts=2, backoff_s=0.1
    )


# ---------------------------------------------------------------------------------------------
# incremental polling
# ---------------------------------------------------------------------------------------------


def test_first_poll_fetches_everything_second_nothing_then_only_the_new_one(imap_campaign, dovecot):
    user = imap_campaign.imap_user
    dovecot.append(user, raw_mail(TAIYUAN, "太原 材料"))
    dovecot.append(user, raw_mail(DATONG, "大同 材料"))

    first = imap_campaign.ingest()
    assert (first["new"], first["attributed"], first["failed"]) == (2, 2, 0)

    again = imap_campaign.ingest()
    assert again["new"] == 0

    dovecot.append(user, raw_mail(DATONG, "大同 补充材料"))
    third = imap_campaign.ingest()
    assert third["new"] == 1
    rows = imap_campaign.messages()
    assert [r["subject"] for r in rows] == ["太原 材料", "大同 材料", "大同 补充材料"]
    assert [r["unit"] for r in rows] == ["taiyuan-kjj", "datong-kjj", "datong-kjj"]


def test_search_above_the_highest_uid_finds_nothing(imap_campaign, dovecot):
    """`UID SEARCH UID n:*` always answers the highest UID even when it is below n."""
    dovecot.append(imap_campaign.imap_user, raw_mail())
    imap_campaign.ingest()
    conn = open_connection(imap_campaign.db_path)
    with source_for(imap_campaign) as src:
        assert src.count_new(conn) == 0
        assert list(src.fetch_new(conn)) == []


def test_arrival_time_is_the_servers_internaldate_not_the_date_header(imap_campaign, dovecot):
    arrived = datetime(2022, 6, 26, 1, 30, 0, tzinfo=UTC)  # after the deadline
    lying = datetime(2022, 6, 20, 9, 0, 0, tzinfo=timezone(timedelta(hours=8)))
    dovecot.append(imap_campaign.imap_user, raw_mail(date=lying), internaldate=arrived)
    imap_campaign.ingest()
    [row] = imap_campaign.messages()
    assert datetime.fromisoformat(row["received_at"]) == arrived


def test_polling_leaves_messages_unread_and_unflagged(imap_campaign, dovecot):
    user = imap_campaign.imap_user
    dovecot.append(user, raw_mail())
    dovecot.append(user, raw_mail(DATONG), flags=[r"\Flagged"])
    imap_campaign.ingest()
    flags = [set(m["flags"]) - {r"\Recent"} for m in dovecot.messages(user).values()]
    assert flags == [set(), {r"\Flagged"}]


def test_failed_message_is_fetched_again(imap_campaign, dovecot):
    """A message recorded as failed is handed out again on every poll until it succeeds."""
    user = imap_campaign.imap_user
    uid = dovecot.append(user, raw_mail())
    dovecot.append(user, raw_mail(DATONG))
    imap_campaign.ingest()
    conn = open_connection(imap_campaign.db_path)
    conn.execute(
        "UPDATE messages SET status = 'failed', error = 'disk full' WHERE source_key LIKE ?", (f"%:{uid}",)
    )
    with source_for(imap_campaign) as src:
        got = [f.envelope.uid for f in src.fetch_new(conn)]
    assert got == [uid]
    assert imap_campaign.ingest()["new"] == 1
    assert [r["disposition"] for r in imap_campaign.messages()] == ["attributed", "attributed"]


# ---------------------------------------------------------------------------------------------
# UIDVALIDITY
# ---------------------------------------------------------------------------------------------


def test_uidvalidity_change_fetches_again_without_counting_twice(imap_campaign, dovecot, caplog):
    user = imap_campaign.imap_user
    dovecot.append(user, raw_mail(TAIYUAN, "太原 材料"))
    dovecot.append(user, raw_mail(DATONG, "大同 材料"))
    imap_campaign.ingest()
    status_before = imap_campaign.status()

    dovecot.change_uidvalidity(user)
    with caplog.at_level("WARNING", logger="ingest.sources.imap"):
        again = imap_campaign.ingest()
    assert again["new"] == 2 and again["duplicate"] == 2
    assert any("UIDVALIDITY" in r.getMessage() for r in caplog.records)

    rows = imap_campaign.messages()
    assert sorted(r["disposition"] for r in rows) == ["attributed", "attributed", "duplicate", "duplicate"]
    assert imap_campaign.status() == status_before

    dovecot.append(user, raw_mail(DATONG, "大同 补充"))
    assert imap_campaign.ingest()["new"] == 1


# ---------------------------------------------------------------------------------------------
# big messages, streamed part by part
# ---------------------------------------------------------------------------------------------


def big_message(video: bytes, notes: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"] = TAIYUAN
    msg["To"] = "sxskjtrcc@126.com"
    msg["Subject"] = "太原 视频"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = "<big-video@test.mailroll>"
    msg.set_content("视频见附件。")
    msg.add_attachment(video, maintype="video", subtype="mp4", filename="科技周宣传片.mp4")
    # a long text file, sent quoted-printable: decoded across chunk boundaries too
    msg.add_attachment(
        notes.decode("utf-8"), subtype="plain", charset="utf-8", cte="quoted-printable", filename="说明.txt"
    )
    return msg.as_bytes()


@pytest.fixture(scope="module")
def big_payloads():
    video = b"\x00\x00\x00\x18ftypmp42" + os.urandom(30 * 1024 * 1024)
    line = "山西省科技活动周 = 说明 ünïcode =3D =\n".encode()
    notes = b"".join(line + str(i).encode() + b"\n" for i in range(60000))
    return video, notes


def test_big_message_is_streamed_per_part_with_identical_content(imap_campaign, dovecot, big_payloads):
    video, notes = big_payloads
    dovecot.append(imap_campaign.imap_user, big_message(video, notes))
    conn = open_connection(imap_campaign.db_path)
    with source_for(imap_campaign) as src:
        [fetched] = list(src.fetch_new(conn))
    assert fetched.raw is None and fetched.parsed is not None  # not fetched whole
    parsed = fetched.parsed
    assert parsed.headers.subject == "太原 视频"
    assert "视频见附件" in parsed.body_text
    by_name = {p.filename: p for p in parsed.parts}
    mp4, txt = by_name["科技周宣传片.mp4"], by_name["说明.txt"]
    assert mp4.spool is not None and mp4.data is None
    assert hashlib.sha256(mp4.spool.read_bytes()).hexdigest() == hashlib.sha256(video).hexdigest()
    txt_bytes = txt.data if txt.data is not None else txt.spool.read_bytes()
    assert txt_bytes.replace(b"\r\n", b"\n") == notes
    for p in parsed.parts:
        if p.spool:
            p.spool.unlink()

    # and through the whole pipeline: the stored file is the original
    imap_campaign.ingest()
    row = (
        open_connection(imap_campaign.db_path)
        .execute("SELECT sha256, size FROM parts WHERE filename = '科技周宣传片.mp4'")
        .fetchone()
    )
    assert row == (hashlib.sha256(video).hexdigest(), len(video))


def test_stream_decoder_handles_chunk_boundaries():
    import base64
    import quopri

    data = os.urandom(100_003)
    enc = base64.encodebytes(data)
    for step in (1, 3, 77, 4096):
        d = StreamDecoder("base64")
        out = b"".join(d.feed(enc[i : i + step]) for i in range(0, len(enc), step)) + d.finish()
        assert out == data
    text = ("科技活动周 = ünïcode\t \n" * 3000).encode()
    qp = quopri.encodestring(text)
    for step in (1, 5, 1000):
        d = StreamDecoder("quoted-printable")
        out = b"".join(d.feed(qp[i : i + step]) for i in range(0, len(qp), step)) + d.finish()
        assert out == text


def test_damaged_base64_decodes_the_same_however_it_is_cut_and_as_the_parser_reads_it():
    """Padding in the middle (two blobs glued) or junk: the bytes kept do not depend on where
    the partial fetches cut the part, equal what the whole-message parser keeps, and the part
    is marked damaged when base64 follows the padding."""
    import base64

    from ingest.mime.text import tolerant_b64

    first, second = os.urandom(3001), os.urandom(3000)  # 3001 bytes: the first ends in padding
    glued = base64.encodebytes(first).replace(b"\n", b"\r\n") + base64.encodebytes(second)
    junk = base64.encodebytes(first)[:2000] + b"*~\x00" + base64.encodebytes(first)[2000:]
    for enc, damaged in ((glued, True), (junk, False)):
        results = set()
        for step in (1, 3, 77, 1000, len(enc)):
            d = StreamDecoder("base64")
            out = b"".join(d.feed(enc[i : i + step]) for i in range(0, len(enc), step)) + d.finish()
            results.add((out, d.damaged))
        assert results == {(tolerant_b64(enc)[0], damaged)}
    assert tolerant_b64(junk)[0] == first


# ---------------------------------------------------------------------------------------------
# post actions
# ---------------------------------------------------------------------------------------------


def test_post_action_flag_adds_the_keyword_only(imap_campaign, dovecot):
    imap_campaign.configure(mailbox={"post_action": "flag", "post_flag": "$Mailroll"})
    user = imap_campaign.imap_user
    dovecot.append(user, raw_mail())
    dovecot.append(user, raw_mail(DATONG))
    imap_campaign.ingest()
    flags = [set(m["flags"]) - {r"\Recent"} for m in dovecot.messages(user).values()]
    assert flags == [{"$Mailroll"}, {"$Mailroll"}]


def test_post_action_move_moves_to_the_done_folder_and_deletes_nothing(imap_campaign, dovecot):
    imap_campaign.configure(mailbox={"post_action": "move", "post_folder": "mailroll-done"})
    user = imap_campaign.imap_user
    dovecot.append(user, raw_mail())
    dovecot.append(user, raw_mail(DATONG))
    assert imap_campaign.ingest()["new"] == 2
    assert dovecot.messages(user) == {}
    moved = dovecot.messages(user, "mailroll-done")
    assert len(moved) == 2 and all(r"\Seen" not in m["flags"] for m in moved.values())
    dovecot.append(user, raw_mail(DATONG, "大同 补充"))
    assert imap_campaign.ingest()["new"] == 1
    assert len(dovecot.messages(user, "mailroll-done")) == 3


# ---------------------------------------------------------------------------------------------
# connection: ID, errors, IDLE
# ---------------------------------------------------------------------------------------------


def test_client_identifies_itself_with_imap_id(imap_campaign, dovecot):
    with source_for(imap_campaign) as src:
        assert src.sent_id
    user = imap_campaign.imap_user
    ids = [line for line in dovecot.log().splitlines() if f"imap({user})" in line and "ID sent:" in line]
    assert ids and "name=mailroll" in ids[0] and "version=" in ids[0]


def test_wrong_password_says_what_to_check(imap_campaign, dovecot, monkeypatch):
    monkeypatch.setenv("MAILROLL_IMAP_PASSWORD", "wrong")
    res = imap_campaign.run("ingest", "--once", expect=1)
    text = res.output + res.stderr
    user = imap_campaign.imap_user
    assert f"login failed for user {user} at 127.0.0.1:{dovecot.port}" in text
    assert "$MAILROLL_IMAP_PASSWORD" in text


def test_missing_folder_and_closed_port_are_clear_errors(imap_campaign, dovecot):
    from fixtures.ports import refused_port

    imap_campaign.configure(mailbox={"folder": "没有这个文件夹"})
    with pytest.raises(MailboxError, match="cannot open folder '没有这个文件夹'"):
        source_for(imap_campaign).__enter__()
    with refused_port() as port:
        imap_campaign.configure(mailbox={"folder": "INBOX", "port": port})
        with pytest.raises(
            MailboxError, match=f"cannot connect to the mailbox at 127.0.0.1:{port}.*connection refused"
        ):
            source_for(imap_campaign).__enter__()


def test_idle_wait_returns_when_mail_arrives(imap_campaign, dovecot):
    user = imap_campaign.imap_user
    active, result = threading.Event(), []
    with source_for(imap_campaign) as src:
        assert src.idle_wait(0.5) is False  # nothing arrived
        waiter = threading.Thread(target=lambda: result.append(src.idle_wait(600, active=active)))
        waiter.start()
        assert active.wait(120), "IDLE never started"
        dovecot.append(user, raw_mail())  # the server has accepted IDLE: it must tell at once
        waiter.join(600)
        assert result == [True]  # woken by the new mail, not by the timeout


def test_idle_wait_ends_when_asked_to_stop(imap_campaign):
    """The service's IDLE watcher waits on this: a stop request ends the wait (no new mail)."""
    stop, active, result = threading.Event(), threading.Event(), []
    with source_for(imap_campaign) as src:
        waiter = threading.Thread(target=lambda: result.append(src.idle_wait(600, stop=stop, active=active)))
        waiter.start()
        assert active.wait(30), "IDLE never started"
        stop.set()
        waiter.join(30)
        assert not waiter.is_alive() and result == [False] and not active.is_set()


def test_stopping_early_leaves_no_spool_files_behind(imap_campaign, dovecot):
    """The pipeline may stop mid-poll (SIGTERM): parts fetched ahead but never handed out are
    deleted, and the prefetch thread ends."""
    for i in range(4):
        dovecot.append(
            imap_campaign.imap_user, raw_mail(attachments=[(f"v{i}.mp4", os.urandom(1_500_000), "video/mp4")])
        )
    conn = open_connection(imap_campaign.db_path)
    spool = imap_campaign.root / "spool"
    with source_for(imap_campaign, stream_threshold_bytes=100_000) as src:
        gen = src.fetch_new(conn)
        first = next(gen)
        assert first.parsed is not None
        kept = {p.spool for p in first.parsed.parts if p.spool}
        gen.close()
        assert not any(t.name == "imap-prefetch" for t in threading.enumerate())
    assert set(spool.iterdir()) == kept


def test_a_disk_error_while_writing_a_streamed_part_fails_that_message_only(
    imap_campaign, dovecot, monkeypatch
):
    """Streamed parts are written by a thread of their own: an error there (the disk is full)
    comes back as the message's recorded reason, its spool file goes, and the poll goes on."""
    import errno

    import ingest.sources.imap.spool_writer as spool_writer

    sizes = (1_500_000, 1_400_000)  # (each decoded in one chunk: its size tells whose it is)
    for i, size in enumerate(sizes):
        dovecot.append(
            imap_campaign.imap_user, raw_mail(attachments=[(f"v{i}.mp4", os.urandom(size), "video/mp4")])
        )

    def full_once(fd, offset, length):  # the first message's part meets a full disk
        if length == sizes[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(spool_writer, "start_writeback", full_once)
    conn = open_connection(imap_campaign.db_path)
    spool = imap_campaign.root / "spool"
    with source_for(imap_campaign, stream_threshold_bytes=100_000) as src:
        first, second = list(src.fetch_new(conn))
    assert first.parsed is None and os.strerror(errno.ENOSPC) in first.error
    (video,) = [p for p in second.parsed.parts if p.spool]
    assert video.size == sizes[1] and set(spool.iterdir()) == {video.spool}
    assert not any(t.name in ("imap-spool", "imap-served") for t in threading.enumerate())


def test_move_without_the_move_capability_copies_and_flags(imap_campaign, dovecot, monkeypatch):
    """Servers without MOVE: COPY to the done folder and add the keyword; nothing is deleted."""
    imap_campaign.configure(mailbox={"post_action": "move", "post_folder": "mailroll-done"})
    user = imap_campaign.imap_user
    dovecot.append(user, raw_mail())
    connect = ImapSource._connect

    def connect_without_move(self):  # as an old server would advertise
        connect(self)
        self.capabilities.discard("MOVE")

    monkeypatch.setattr(ImapSource, "_connect", connect_without_move)
    assert imap_campaign.ingest()["new"] == 1
    [kept] = dovecot.messages(user).values()
    assert "$Mailroll" in kept["flags"] and r"\Deleted" not in kept["flags"]
    assert len(dovecot.messages(user, "mailroll-done")) == 1
    assert imap_campaign.ingest()["new"] == 0


def forwarding_mail() -> bytes:
    """A unit forwards two earlier messages (one big, one small) and adds a GBK-named file."""
    from email.header import Header

    inner_big = build_mail(
        DATONG,
        "大同 视频（原邮件）",
        [("大同宣传片.mp4", os.urandom(600_000), "video/mp4")],
        body="原邮件正文",
    )
    inner_small = build_mail(
        "长治市科学技术局 <czkjj@changzhi.gov.cn>",
        "长治 统计表（原邮件）",
        [
            (
                "长治统计表.xlsx",
                os.urandom(20_000),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            )
        ],
    )
    msg = build_mail(
        TAIYUAN,
        "转发：材料",
        body="请查收转发的材料。",
        attachments=[("placeholder.bin", os.urandom(150_000), "application/octet-stream")],
    )
    att = msg.get_payload()[-1]
    del att["Content-Disposition"]
    att["Content-Disposition"] = 'attachment; filename="{}"'.format(
        Header("太原总结报告.pdf", "gbk").encode()
    )
    msg.add_attachment(inner_big)
    msg.add_attachment(inner_small)
    return msg.as_bytes()


def test_streamed_message_reads_like_the_parser_reads_it_whole(imap_campaign, dovecot):
    """Per-part streaming (forced with a low threshold) gives the same parts, names, nesting,
    forwarded headers and text as parse_message on the whole message."""
    from ingest import mime

    user = imap_campaign.imap_user
    dovecot.append(user, forwarding_mail())
    with dovecot.client(user) as c:
        c.select_folder("INBOX", readonly=True)
        [(uid, data)] = c.fetch(c.search(["ALL"]), ["BODY.PEEK[]"]).items()
    whole = mime.parse_message(data[b"BODY[]"], Limits())

    conn = open_connection(imap_campaign.db_path)
    with source_for(imap_campaign, stream_threshold_bytes=100_000) as src:
        [fetched] = list(src.fetch_new(conn))
    streamed = fetched.parsed
    assert fetched.raw is None and streamed is not None

    def view(parsed):
        out = []
        for p in parsed.parts:
            content = p.data if p.data is not None else (p.spool.read_bytes() if p.spool else None)
            out.append(
                (
                    p.location,
                    p.filename,
                    p.origin,
                    p.parent,
                    p.declared_type,
                    hashlib.sha256(content).hexdigest() if content is not None else None,
                )
            )
        return out

    got, want = view(streamed), view(whole)
    # the big forwarded message itself is not kept as a file when streamed: only what it carries
    assert (
        got[1][:5] == want[1][:5] == ("forwarded message 1.eml", None, "attachment", None, "message/rfc822")
    )
    assert got[1][5] is None

    # a small forwarded message is kept byte for byte as sent; the parser keeps the stdlib's
    # re-serialisation of it: compare those without content
    def no_eml_hash(rows):
        return [r[:5] if r[4] == "message/rfc822" else r for r in rows]

    assert no_eml_hash(got) == no_eml_hash(want)
    assert got[0][1] == "太原总结报告.pdf"
    assert [h.subject for h in streamed.forwarded] == [h.subject for h in whole.forwarded]
    assert streamed.body_text == whole.body_text
    assert streamed.headers == whole.headers
    for p in streamed.parts:
        if p.spool:
            p.spool.unlink()


# ---------------------------------------------------------------------------------------------
# TLS (port 993 in production)
# ---------------------------------------------------------------------------------------------


def test_tls_certificate_is_verified(campaign, dovecot_tls, monkeypatch):
    monkeypatch.setenv("MAILROLL_IMAP_PASSWORD", "secret")
    user = dovecot_tls.new_user()
    dovecot_tls.append(user, raw_mail())
    campaign.configure(
        mailbox=dovecot_tls.imap_settings(user, port=dovecot_tls.tls_port, tls=True, retries=1)
    )
    # an unknown CA: refused, and the message says why
    monkeypatch.setenv("SSL_CERT_FILE", str(campaign.root / "no-such-ca.pem"))
    res = campaign.run("ingest", "--once", expect=1)
    assert "certificate could not be verified" in res.output + res.stderr
    # the CA trusted: the same poll works over TLS
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot_tls.ca_file))
    assert campaign.ingest()["new"] == 1


def test_tls_against_a_plain_port_says_to_check_the_tls_setting(campaign, dovecot, monkeypatch):
    monkeypatch.setenv("MAILROLL_IMAP_PASSWORD", "secret")
    campaign.configure(mailbox=dovecot.imap_settings(dovecot.new_user(), tls=True, retries=1))
    res = campaign.run("ingest", "--once", expect=1)
    assert "is mailbox.tls right for this port?" in res.output + res.stderr


def test_plain_imap_against_an_imaps_port_says_to_check_the_tls_setting(campaign, dovecot_tls, monkeypatch):
    monkeypatch.setenv("MAILROLL_IMAP_PASSWORD", "secret")
    campaign.configure(
        mailbox=dovecot_tls.imap_settings(
            dovecot_tls.new_user(), port=dovecot_tls.tls_port, tls=False, retries=1, timeout_s=1
        )
    )
    res = campaign.run("ingest", "--once", expect=1)
    assert "no answer within 1 s (is mailbox.tls right for this port?" in res.output + res.stderr


def test_message_over_the_size_limit_fails_but_shows_whose_it_is(imap_campaign, dovecot):
    """Over limits.max_message_bytes: not fetched, recorded as failed with the reason, and its
    header block is still read so staff see who sent it."""
    imap_campaign.configure(limits={"max_message_bytes": 2000, "stream_threshold_bytes": 1000})
    dovecot.append(imap_campaign.imap_user, raw_mail(DATONG) + b"\r\n" + b"x" * 5000 + b"\r\n")
    counts = imap_campaign.ingest()
    assert counts["failed"] == 1
    (row,) = imap_campaign.messages()
    assert row["disposition"] == "failed" and "max_message_bytes" in row["reason"]
    assert row["from"] == "dtkjj2022@163.com" and row["subject"] == "2022年科技活动周材料"


def test_big_messages_streamed_side_by_side_are_handed_out_in_order(imap_campaign, dovecot):
    """Two big messages stream at once (the second, smaller one finishes first); small ones
    between them are fetched meanwhile: all are handed out in UID order, each complete."""
    sizes = [6_000_000, 0, 1_200_000, 0, 3_000_000]
    for i, size in enumerate(sizes):
        atts = [(f"v{i}.mp4", os.urandom(size), "video/mp4")] if size else []
        dovecot.append(imap_campaign.imap_user, raw_mail(subject=f"第{i}封", attachments=atts))
    conn = open_connection(imap_campaign.db_path)
    with source_for(imap_campaign, stream_threshold_bytes=100_000) as src:
        got = list(src.fetch_new(conn))
    assert [f.envelope.uid for f in got] == sorted(f.envelope.uid for f in got) and len(got) == 5
    for i, (fetched, size) in enumerate(zip(got, sizes, strict=True)):
        assert fetched.error is None
        if size:  # streamed: its part is in a spool file
            assert fetched.parsed.headers.subject == f"第{i}封"
            assert [p.size for p in fetched.parsed.parts if p.spool] == [size]
        else:  # fetched whole, for a worker process to parse
            assert message_from_bytes(fetched.raw, policy=policy.default)["subject"] == f"第{i}封"
