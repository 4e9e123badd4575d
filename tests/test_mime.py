"""parse_message on mail as Chinese clients send it: GBK headers, RFC 2231 names, raw 8-bit
headers, forwarded messages, HTML-only mail, and the IMAP per-part helper."""

from __future__ import annotations

import base64
import hashlib

import pytest
from fixtures.mail import b_word, build_forward, build_mail, raw_mail, raw_part, split_b_words, std_headers

from ingest.config import Limits
from ingest.mime import decode_words, parse_headers, parse_message, part_from_entity

LIMITS = Limits()
SHEET = "2022年科技活动周开展情况统计表（太原市）.xlsx"


def test_gbk_encoded_subject_and_from_name_labelled_gb2312():
    # 镕 is in GBK but not in GB2312: senders label GBK text as gb2312 anyway
    raw = raw_mail(
        std_headers(
            f"{b_word('太原市科技局 王镕')} <TYKJJ@Taiyuan.GOV.cn>",
            b_word("关于报送2022年科技活动周材料的函"),
        )
    )
    p = parse_message(raw, LIMITS)
    assert p.headers.subject == "关于报送2022年科技活动周材料的函"
    assert p.headers.from_name == "太原市科技局 王镕"
    assert p.headers.from_addr == "tykjj@taiyuan.gov.cn"
    assert p.headers.message_id == "20220620101112.ABCDEF@taiyuan.gov.cn"
    assert p.body_text.startswith("您好，附件是我单位的材料")
    assert p.content_sha256 == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("label", ["gb2312", "GBK", "gb_2312-80", "x-gbk", "GB18030", "cp936"])
def test_gb_charset_labels_decode_as_gb18030(label):
    assert decode_words(b_word("晋中市科技局", label)) == "晋中市科技局"


def test_encoded_words_split_inside_a_character_are_joined():
    subject = split_b_words("忻州市科学技术局科技周总结", cut=3)
    p = parse_message(raw_mail(std_headers("a@b.cn", subject)), LIMITS)
    assert p.headers.subject == "忻州市科学技术局科技周总结"


def test_malformed_and_unterminated_encoded_words_do_not_crash():
    good = base64.b64encode("长治市".encode("gbk")).decode()
    assert decode_words(f"=?gbk?B?{good}") == "长治市"  # no closing ?=
    assert decode_words(f"=?gbk?B?{good[:-1]}?=").startswith("长治")  # bad padding
    assert decode_words("=?unknown-charset?B?5aSq5Y6f?=") == "太原"  # unknown label: UTF-8 fits
    assert decode_words("=?utf-8?Q?=E5=A4=AA=E5=8E=9F_x?=") == "太原 x"
    p = parse_message(raw_mail(std_headers("a@b.cn", "=?gbk?B?@@@?= 材料")), LIMITS)
    assert "材料" in p.headers.subject


@pytest.mark.parametrize(
    "style", ["rfc2047", "rfc2231", "rfc2231-utf8", "rfc2231-cont", "raw", "raw-utf8", "ctype-name"]
)
def test_attachment_names_in_every_style(style):
    part = raw_part(b"PK\x03\x04 sheet", "application/vnd.ms-excel", SHEET, style)
    p = parse_message(raw_mail(std_headers("a@b.cn", "材料"), [part]), LIMITS)
    assert [x.filename for x in p.parts] == [SHEET]
    assert p.parts[0].location == SHEET
    assert p.parts[0].data == b"PK\x03\x04 sheet"
    assert p.parts[0].origin == "attachment"


def test_raw_utf8_headers():
    headers = std_headers("阳泉市科学技术局 <yq@yq.gov.cn>".encode(), "阳泉市科技周材料报送".encode())
    p = parse_message(raw_mail(headers), LIMITS)
    assert p.headers.subject == "阳泉市科技周材料报送"
    assert p.headers.from_name == "阳泉市科学技术局"
    assert p.headers.from_addr == "yq@yq.gov.cn"


def test_raw_gbk_headers():
    headers = std_headers("运城市科技局 <yc@yuncheng.gov.cn>".encode("gbk"), "运城市科技周总结".encode("gbk"))
    p = parse_message(raw_mail(headers), LIMITS)
    assert p.headers.subject == "运城市科技周总结"
    assert p.headers.from_name == "运城市科技局"
    assert p.headers.from_addr == "yc@yuncheng.gov.cn"


def test_forwarded_message_attachment_counts_and_sender_is_recorded():
    inner = build_mail(
        from_="吕梁市科技局 <ll@lvliang.gov.cn>",
        subject="吕梁市科技周材料",
        attachments=[(SHEET, b"PK\x03\x04inner")],
    ).as_bytes()
    p = parse_message(build_forward(inner), LIMITS)
    assert p.headers.from_addr == "kjt@shanxi.gov.cn"
    assert [h.from_addr for h in p.forwarded] == ["ll@lvliang.gov.cn"]
    assert p.forwarded[0].subject == "吕梁市科技周材料"
    msg_part, sheet = p.parts
    assert msg_part.declared_type == "message/rfc822"
    assert sheet.filename == SHEET and sheet.origin == "forwarded" and sheet.parent == 0
    assert sheet.data == b"PK\x03\x04inner"
    assert sheet.location.endswith("/" + SHEET)
    assert "请看转发的邮件" in p.body_text


def test_nested_forward_and_forward_depth_limit():
    inner = build_mail(from_="x@sx.cn", subject="原件", attachments=[("总结.docx", b"DOCX")]).as_bytes()
    once = build_forward(inner, from_="mid@sx.cn", subject="Fw: 原件")
    twice = build_forward(once, from_="top@sx.cn", subject="Fw: Fw: 原件")
    p = parse_message(twice, LIMITS)
    assert [h.from_addr for h in p.forwarded] == ["mid@sx.cn", "x@sx.cn"]
    docx = [x for x in p.parts if x.filename == "总结.docx"]
    assert len(docx) == 1 and docx[0].origin == "forwarded" and docx[0].data == b"DOCX"
    assert p.parts[docx[0].parent].declared_type == "message/rfc822"
    # with a depth limit of 1 the inner forward is kept as a part but not opened
    p1 = parse_message(twice, Limits(max_forward_depth=1))
    assert [h.from_addr for h in p1.forwarded] == ["mid@sx.cn"]
    assert not any(x.filename == "总结.docx" for x in p1.parts)
    assert any("nested deeper than 1" in d for d in p1.defects)


def test_forwarded_eml_sent_as_octet_stream():
    inner = build_mail(
        from_="大同市科技局 <dt@datong.gov.cn>",
        subject="大同",
        attachments=[("视频.mp4", b"\x00\x00\x00\x18ftypmp42")],
    ).as_bytes()
    p = parse_message(build_forward(inner, as_octet=True), LIMITS)
    assert [h.from_addr for h in p.forwarded] == ["dt@datong.gov.cn"]
    video = [x for x in p.parts if x.filename == "视频.mp4"]
    assert video and video[0].origin == "forwarded"
    assert p.parts[0].filename == "科技活动周材料.eml"


def test_html_only_mail_gives_text_and_keeps_html_for_links():
    html = (
        "<html><head><style>p{color:red}</style></head><body><p>您好</p>"
        '<a href="https://mail.163.com/large-attachment-download/index.html?p=X">超大附件</a></body></html>'
    )
    msg = build_mail(body="x")
    msg.set_content(html, subtype="html")
    p = parse_message(msg.as_bytes(), LIMITS)
    assert "您好" in p.body_text and "超大附件" in p.body_text and "color" not in p.body_text
    assert "https://mail.163.com/large-attachment-download" in p.html


def test_inline_cid_image_is_a_part_marked_inline():
    img = raw_part(
        b"\x89PNG\r\n\x1a\n....",
        "image/png",
        "photo.png",
        "rfc2047",
        disposition="inline",
        extra_headers=b"Content-ID: <img001@foxmail>\r\n",
    )
    p = parse_message(
        raw_mail(std_headers("a@b.cn", "s"), [img], html='<img src="cid:img001@foxmail">'), LIMITS
    )
    assert len(p.parts) == 1 and p.parts[0].inline is True


def test_message_id_reply_to_and_auto_headers():
    msg = build_mail(
        message_id="<ABC.123@Mail.QQ.com>",
        headers={
            "Reply-To": "Office <Office@Taiyuan.gov.cn>",
            "In-Reply-To": "<r1@x>",
            "References": "<r0@x> <r1@x>",
            "Auto-Submitted": "auto-replied",
        },
    )
    h = parse_message(msg.as_bytes(), LIMITS).headers
    assert h.message_id == "ABC.123@Mail.QQ.com"
    assert h.reply_to == "office@taiyuan.gov.cn"
    assert h.in_reply_to == "r1@x" and h.references == ["r0@x", "r1@x"]
    assert h.auto_submitted == "auto-replied"


def test_parse_headers_alone():
    h = parse_headers(
        b"From: "
        + b_word("朔州市科技局").encode()
        + b" <sz@sz.gov.cn>\r\nSubject: "
        + "朔州".encode("gbk")
        + b"\r\n\r\nbody ignored"
    )
    assert (h.from_name, h.from_addr, h.subject) == ("朔州市科技局", "sz@sz.gov.cn", "朔州")


def test_part_from_entity_for_streamed_imap_parts(tmp_path):
    header = (
        b'Content-Type: video/mp4;\r\n\tname="' + b_word("科技周视频.mp4").encode() + b'"\r\n'
        b"Content-Disposition: attachment;\r\n\tfilename*0*=GBK''%BF%C6%BC%BC;\r\n"
        b"\tfilename*1*=%D6%DC%CA%D3%C6%B5.mp4\r\nContent-Transfer-Encoding: base64\r\n"
    )
    spool = tmp_path / "spool-1"
    spool.write_bytes(b"video bytes")
    part = part_from_entity(header, spool=spool, location="科技周视频.mp4")
    assert part.filename == "科技周视频.mp4" and part.declared_type == "video/mp4"
    assert part.spool == spool and part.size == 11 and part.data is None
    part2 = part_from_entity(header, data=base64.b64encode(b"abc"), encoded=True)
    assert part2.data == b"abc" and part2.location == "科技周视频.mp4"


def test_outlook_name_split_over_folded_encoded_words_and_rfc2231_preferred():
    w1, w2 = split_b_words(SHEET, charset="gb2312", cut=20).split(" ", 1)
    outlook = (
        b'Content-Type: application/vnd.ms-excel;\r\n\tname="'
        + w1.encode()
        + b"\r\n\t"
        + w2.encode()
        + b'"\r\nContent-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n'
    )
    both = (
        b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment;\r\n"
        b"\tfilename=\"____.docx\";\r\n\tfilename*=UTF-8''%E6%80%BB%E7%BB%93.docx\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nQUJD\r\n"
    )
    p = parse_message(raw_mail(std_headers("a@b.cn", "s"), [outlook, both]), LIMITS)
    assert [x.filename for x in p.parts] == [SHEET, "总结.docx"]
    assert [x.data for x in p.parts] == [b"ABC", b"ABC"]


def test_bounce_report_keeps_returned_headers_but_no_parts():
    returned = build_mail(
        from_="sxskjtrcc@126.com",
        to="unit@taiyuan.gov.cn",
        subject="催报：科技活动周材料",
        attachments=[("通知.pdf", b"%PDF-1.4")],
    ).as_bytes()
    raw = (
        b"From: MAILER-DAEMON@126.com\r\nTo: sxskjtrcc@126.com\r\nSubject: Undelivered Mail\r\n"
        b"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        b"--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; 126.com\r\n\r\n"
        b"Final-Recipient: rfc822; unit@taiyuan.gov.cn\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"--r\r\nContent-Type: message/rfc822\r\n\r\n" + returned + b"\r\n--r--\r\n"
    )
    p = parse_message(raw, LIMITS)
    assert p.headers.content_type == "multipart/report; report-type=delivery-status"
    assert p.parts == []
    assert [h.to_addrs for h in p.forwarded] == [["unit@taiyuan.gov.cn"]]
    assert "could not be delivered" in p.body_text
    assert "Final-Recipient: rfc822; unit@taiyuan.gov.cn" in p.body_text


def test_mbox_from_line_and_lf_only_line_ends():
    raw = (
        b"From unit@sx.cn Mon Jun 20 10:00:00 2022\nFrom: =?gbk?B?"
        + base64.b64encode("晋城".encode("gbk"))
        + b"?= <JC@sx.cn>\nSubject: hi\n\nbody\n"
    )
    p = parse_message(raw, LIMITS)
    assert (p.headers.from_name, p.headers.from_addr, p.body_text.strip()) == ("晋城", "jc@sx.cn", "body")


def test_big_attachment_links_are_found_in_html_and_forwarded_text():
    html = (
        '<div>超大附件：<a href="https://mail.163.com/large-attachment-download/index.html?p=X1&file=Y">'
        "科技周视频.mp4</a></div>"
    )
    msg = build_mail(body="x")
    msg.set_content(html, subtype="html")
    p = parse_message(msg.as_bytes(), LIMITS)
    assert [link.host for link in p.links] == ["mail.163.com"]
    fwd = parse_message(build_forward(msg.as_bytes()), LIMITS)
    assert [link.host for link in fwd.links] == ["mail.163.com"]


def test_outlook_winmail_dat_attachments_are_unpacked(corpus_dir):
    sample = corpus_dir / "jstedfast-MimeKit" / "tnef" / "rich-text.eml"
    p = parse_message(sample.read_bytes(), LIMITS)
    winmail = p.parts[0]
    assert winmail.filename == "winmail.dat"
    photo = next(x for x in p.parts if x.filename == "kitten-playing-with-a-christmas-tree.jpg")
    assert photo.origin == "archive" and photo.parent == 0 and photo.data.startswith(b"\xff\xd8\xff")
    assert photo.location == "winmail.dat/kitten-playing-with-a-christmas-tree.jpg"


def test_damaged_winmail_dat_is_kept_with_a_defect():
    part = raw_part(b"not tnef at all", "application/ms-tnef", "winmail.dat", "raw-utf8")
    p = parse_message(raw_mail(std_headers("a@b.cn", "s"), [part]), LIMITS)
    assert [x.filename for x in p.parts] == ["winmail.dat"]
    assert any("winmail.dat could not be read" in d for d in p.defects)


def test_forwarded_message_sent_base64_encoded():
    inner = build_mail(
        from_="忻州市科技局 <xz@xinzhou.gov.cn>",
        subject="忻州",
        attachments=[("忻州市统计表.xlsx", b"PK\x03\x04x")],
    ).as_bytes()
    part = (
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="xz.eml"\r\n\r\n'
        + base64.encodebytes(inner).replace(b"\n", b"\r\n")
    )
    p = parse_message(raw_mail(std_headers("fw@sx.cn", "Fw"), [part]), LIMITS)
    assert [h.from_addr for h in p.forwarded] == ["xz@xinzhou.gov.cn"]
    sheet = next(x for x in p.parts if x.filename == "忻州市统计表.xlsx")
    assert sheet.origin == "forwarded" and sheet.data == b"PK\x03\x04x"


def test_finish_body_for_the_streaming_path():
    from ingest.mime import finish_body
    from ingest.model import Headers, ParsedMessage

    p = ParsedMessage(headers=Headers())
    html = '<p>请下载：<a href="https://pan.baidu.com/s/1AbC">科技周视频</a></p>'
    assert finish_body(p, [], [html]) is None
    assert "请下载" in p.body_text and p.html == html
    assert [link.host for link in p.links] == ["pan.baidu.com"]
