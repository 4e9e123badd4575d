#!/usr/bin/env python3
"""Generate the bundled sample mailbox that ``make demo`` ingests (samples/maildir/).

The mailbox tells the story of the 2022 Shanxi Science & Technology Week roll call: about twenty
messages that the 12 units of samples/roster.csv sent to sxskjtrcc@126.com in June 2022, as the
mail clients of those units really write them (Foxmail/QQ GBK headers, NetEase Coremail, Outlook
gb2312, Sina, a government mail system with raw 8-bit UTF-8 headers, a Windows zip with GBK member
names, a message forwarded as an attachment, a NetEase "超大附件" download link...).

Every file is made by code: statistics sheets (.xlsx and a .docx table), summary reports (.docx,
.pdf), photos (.jpeg) and videos (ffmpeg, 96x54 at 2 frames per second, so the whole directory
stays small). ``STORY`` below lists the messages, and ``EXPECTED_STATUS`` what ``mailroll status``
should say about each unit after ingesting them; tests/test_samples.py checks both.

Output is deterministic: fixed dates, Message-IDs, MIME boundaries, zip member timestamps,
document metadata; the randomness is seeded. Byte-identical output needs the same versions of
ffmpeg/x264, openpyxl, python-docx, reportlab and Pillow; the versions used are written to
``GENERATED.json`` next to the Maildir.

Usage:  .venv/bin/python scripts/make_samples.py [--out samples/maildir]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import quopri
import random
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote_from_bytes
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from ingest.config import DEFAULT_SHEET_FIELDS, DEFAULT_SHEET_TEXT_ROWS  # noqa: E402 - the repo is put on sys.path first

CST = ZoneInfo("Asia/Shanghai")
MAILBOX = "sxskjtrcc@126.com"
MAILBOX_NAME = "省科技厅人才处"
DELIVERY_HOST = "mx126.sxskjt"  # the host part of the Maildir file names
DEADLINE = datetime(2022, 6, 25, 23, 59, 59, tzinfo=CST)
FIXED_DOC_TIME = datetime(2022, 6, 1, 9, 0, 0)  # document metadata (naive, as Office writes it)
TITLE = "2022年山西省科技活动周开展情况统计表"


def at(text: str) -> datetime:
    """'2022-06-06 16:20:07' in China Standard Time."""
    return datetime.fromisoformat(text).replace(tzinfo=CST)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def fixed_zip(data: bytes, when: tuple = (2022, 6, 1, 9, 0, 0)) -> bytes:
    """Rewrite a zip (xlsx/docx) with fixed member timestamps, keeping member order and names.

    openpyxl stamps dcterms:modified with the time of saving whatever the workbook says, so the
    core properties are fixed here too."""
    stamp = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z".format(*when)
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info)
            if info.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
                    rb"\g<1>" + stamp.encode() + rb"\g<2>",
                    content,
                )
            zi = zipfile.ZipInfo(info.filename, date_time=when)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            dst.writestr(zi, content)
    return out.getvalue()


def figures_for(seed: str, *, sums_hold: bool = True) -> dict[str, float]:
    """Plausible, internally consistent figures for one unit (seeded)."""
    r = random.Random(seed)
    online = r.randint(3, 15)
    offline = r.randint(5, 30)
    on_p = round(r.uniform(0.5, 8.0), 1)
    off_p = round(r.uniform(0.3, 5.0), 1)
    figs = {
        "活动总数": online + offline + (0 if sums_hold else 4),
        "线上活动": online,
        "线下活动": offline,
        "参与人数": round(on_p + off_p, 1),
        "线上参与": on_p,
        "线下参与": off_p,
        "参与科技人员": r.randint(40, 600),
        "开放实验室及科普基地": r.randint(2, 25),
        "科普讲座": r.randint(3, 40),
        "科普展览": r.randint(1, 12),
        "发放科普资料": round(r.uniform(0.2, 6.0), 1),
        "媒体报道": r.randint(5, 80),
        "投入经费": round(r.uniform(2.0, 60.0), 1),
    }
    return figs


@dataclass
class SheetSpec:
    unit: str
    contact: str
    phone: str
    figures: dict[str, object]
    highlights: str = ""
    note: str = ""
    spaced_labels: bool = False  # '活 动 总 数' as people type them to fill the cell width


def _spaced(label: str) -> str:
    return " ".join(label)


def make_sheet_xlsx(spec: SheetSpec) -> bytes:
    """The statistics sheet as units fill in the notice's template (.xlsx)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    ws.title = "统计表"
    lab = _spaced if spec.spaced_labels else (lambda s: s)
    ws["A1"] = TITLE
    ws["A1"].font = Font(bold=True, size=14)
    ws.merge_cells("A1:D1")
    ws["A1"].alignment = Alignment(horizontal="center")
    ws["A2"], ws["B2"] = lab("填报单位") + ("：" if spec.spaced_labels else ""), spec.unit
    ws.merge_cells("B2:D2")
    ws["A3"], ws["B3"], ws["C3"], ws["D3"] = "联系人", spec.contact, "联系电话", spec.phone
    for col, head in zip("ABCD", ("指标", "单位", "数量", "备注"), strict=True):
        ws[f"{col}4"] = head
        ws[f"{col}4"].font = Font(bold=True)
    row = 5
    for label, unit in DEFAULT_SHEET_FIELDS:
        ws.cell(row, 1, lab(label) if label in ("活动总数", "参与人数", "科普讲座") else label)
        ws.cell(row, 2, unit)
        value = spec.figures.get(label)
        if value is not None:
            ws.cell(row, 3, value)
        row += 1
    texts = {"重点活动名称及简介": spec.highlights, "备注": spec.note}
    for label in DEFAULT_SHEET_TEXT_ROWS:
        ws.cell(row, 1, label)
        ws.cell(row, 2, texts.get(label, ""))
        ws.merge_cells(start_row=row, start_column=2, end_row=row, end_column=4)
        ws.cell(row, 2).alignment = Alignment(wrap_text=True, vertical="top")
        row += 1
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 14
    ws.column_dimensions["C"].width = 12
    ws.column_dimensions["D"].width = 20
    wb.properties.creator = spec.contact
    wb.properties.lastModifiedBy = spec.contact
    wb.properties.created = FIXED_DOC_TIME
    wb.properties.modified = FIXED_DOC_TIME
    buf = io.BytesIO()
    wb.save(buf)
    return fixed_zip(buf.getvalue())


def _fix_docx_props(doc, author: str) -> None:
    cp = doc.core_properties
    cp.author = author
    cp.last_modified_by = author
    cp.created = FIXED_DOC_TIME
    cp.modified = FIXED_DOC_TIME
    cp.last_printed = FIXED_DOC_TIME
    cp.revision = 1


def _docx_bytes(doc) -> bytes:
    buf = io.BytesIO()
    doc.save(buf)
    return fixed_zip(buf.getvalue())


def make_sheet_docx(spec: SheetSpec) -> bytes:
    """The statistics sheet filled in the notice's Word attachment (a table in a .docx)."""
    from docx import Document

    doc = Document()
    doc.add_heading(TITLE, level=1)
    n = len(DEFAULT_SHEET_FIELDS) + len(DEFAULT_SHEET_TEXT_ROWS) + 3
    table = doc.add_table(rows=n, cols=4)
    table.style = "Table Grid"
    c = table.cell
    c(0, 0).text = "填报单位"
    c(0, 1).merge(c(0, 3)).text = spec.unit
    c(1, 0).text, c(1, 1).text, c(1, 2).text, c(1, 3).text = "联系人", spec.contact, "联系电话", spec.phone
    for j, head in enumerate(("指标", "单位", "数量", "备注")):
        c(2, j).text = head
    i = 3
    for label, unit in DEFAULT_SHEET_FIELDS:
        c(i, 0).text, c(i, 1).text = label, unit
        value = spec.figures.get(label)
        c(i, 2).text = "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
        i += 1
    texts = {"重点活动名称及简介": spec.highlights, "备注": spec.note}
    for label in DEFAULT_SHEET_TEXT_ROWS:
        c(i, 0).text = label
        c(i, 1).merge(c(i, 3)).text = texts.get(label, "")
        i += 1
    doc.add_paragraph("填报日期：2022年6月9日")
    _fix_docx_props(doc, spec.contact)
    return _docx_bytes(doc)


def report_paragraphs(unit: str, place: str, highlights: list[str], figs: dict) -> list[str]:
    """A summary report as the units write them: several hundred characters of real prose."""
    total = figs.get("活动总数", 20)
    people = figs.get("参与人数", 3.0)
    return [
        f"根据《山西省科学技术厅 中共山西省委宣传部 山西省科学技术协会关于举办2022年山西省科技活动周的通知》"
        f"（晋科发〔2022〕58号）要求，{unit}高度重视，围绕“走进科技 你我同行”主题，于5月21日至28日在{place}"
        f"组织开展了形式多样的科技活动周系列活动。现将有关情况总结如下。",
        f"一、加强组织领导，精心谋划部署。活动周启动前，{unit}召开专题会议研究部署，制定了活动实施方案，"
        f"明确了责任分工和时间节点，并协调宣传、科协、教育、卫健等部门共同参与，形成了上下联动、"
        f"部门协同的工作格局。同时严格落实疫情防控要求，合理控制线下活动规模，制定了安全保卫和应急预案。",
        "二、突出活动主题，丰富活动内容。"
        + "".join(highlights)
        + f"活动周期间共组织各类科技活动{total}项，线上线下参与群众约{people}万人次，"
        "重点宣传了新修订的《科技进步法》和颁布实施20周年的《科普法》，普及了疫情防控、健康生活、"
        "粮食安全、生态环保等方面的科学知识。",
        "三、创新宣传方式，扩大社会影响。充分利用电视、广播、报刊和微信公众号、抖音、视频号等新媒体平台，"
        "采取网络直播、微视频、图文推送等方式开展线上科普，主流媒体对活动进行了集中报道，"
        "在全社会营造了讲科学、爱科学、学科学、用科学的良好氛围。",
        "四、存在的不足和下一步打算。受疫情影响，部分线下活动规模有所压缩，基层群众参与面还不够广。"
        "下一步，我们将认真总结经验，进一步完善常态化科普工作机制，推动科普资源向基层延伸，"
        "为全省高质量发展营造良好的创新文化氛围。",
    ]


def make_report_docx(title: str, paragraphs: list[str], author: str, date_line: str) -> bytes:
    from docx import Document

    doc = Document()
    doc.add_heading(title, level=1)
    for p in paragraphs:
        doc.add_paragraph(p)
    doc.add_paragraph(date_line)
    _fix_docx_props(doc, author)
    return _docx_bytes(doc)


def make_report_pdf(title: str, paragraphs: list[str], date_line: str) -> bytes:
    """A report 'printed to PDF' with a text layer (reportlab, built-in STSong CID font)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=1)
    c.setTitle(title)
    c.setAuthor("")
    c.setFont("STSong-Light", 16)
    width, height = A4
    c.drawCentredString(width / 2, height - 80, title)
    c.setFont("STSong-Light", 11)
    y = height - 120
    for p in paragraphs + [date_line]:
        for line in textwrap.wrap("　　" + p, 38):
            if y < 60:
                c.showPage()
                c.setFont("STSong-Light", 11)
                y = height - 72
            c.drawString(60, y, line)
            y -= 18
        y -= 6
    c.showPage()
    c.save()
    return buf.getvalue()


def make_photo(seed: str, w: int = 160, h: int = 120) -> bytes:
    """A small JPEG 'activity photo' (shapes in seeded colours)."""
    from PIL import Image, ImageDraw

    r = random.Random(seed)
    img = Image.new("RGB", (w, h), tuple(r.randint(120, 230) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = r.randint(0, w - 30), r.randint(0, h - 30)
        d.rectangle(
            [x, y, x + r.randint(15, 60), y + r.randint(10, 40)],
            fill=tuple(r.randint(0, 255) for _ in range(3)),
        )
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=50)
    return buf.getvalue()


def make_video(
    seconds: int, *, hue: int = 0, fmt: str = "mp4", audio: bool = False, hevc: bool = False
) -> bytes:
    """A real but tiny H.264 video (96x54, 2 fps, silent 8 kHz AAC): ffprobe reports the true
    duration. ``hevc``: HEVC tagged hvc1 instead, as an iPhone records (.MOV), which a browser
    cannot play as sent (the web page shows a playable copy)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"v.{fmt}"
        cmd = [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size=96x54:rate=2:duration={seconds}",
        ]
        if audio:
            cmd += ["-f", "lavfi", "-i", f"anullsrc=r=8000:cl=mono:d={seconds}"]
        cmd += [
            "-vf",
            f"hue=h={hue}",
            "-t",
            str(seconds),
            *(
                [
                    "-c:v",
                    "libx265",
                    "-preset",
                    "ultrafast",
                    "-x265-params",
                    "log-level=error:pools=1:frame-threads=1:wpp=0",
                    "-tag:v",
                    "hvc1",
                ]
                if hevc
                else ["-c:v", "libx264", "-preset", "veryslow", "-crf", "45"]
            ),
            "-pix_fmt",
            "yuv420p",
            "-threads",
            "1",
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-map_metadata",
            "-1",
        ]
        cmd += ["-c:a", "aac", "-b:a", "6k", "-flags:a", "+bitexact"] if audio else ["-an"]
        cmd += ["-f", "mov" if fmt == "mov" else "mp4", str(out)]
        subprocess.run(cmd, check=True, timeout=120)
        return out.read_bytes()


def fake_video_html() -> bytes:
    """What a browser saves when 'download' hits a share page: HTML named 视频.mp4."""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>文件下载 - 百度网盘</title></head>\n'
        '<body><div class="error">链接不存在或已过期，请登录后查看。</div></body></html>\n'
    ).encode()


class _GbkZipInfo(zipfile.ZipInfo):
    """A member name stored in GBK without the UTF-8 flag, as Windows' built-in zip writes it."""

    def _encodeFilenameFlags(self):  # zipfile's name
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def make_gbk_zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            zi = _GbkZipInfo(name, date_time=(2022, 6, 7, 17, 30, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# MIME, written by hand so every client's habits can be reproduced byte for byte
# ---------------------------------------------------------------------------------------------


def b64_lines(data: bytes, width: int = 76) -> str:
    s = base64.b64encode(data).decode("ascii")
    return "\n".join(s[i : i + width] for i in range(0, len(s), width))


def ew(text: str, charset: str = "utf-8", *, label: str | None = None) -> str:
    """RFC 2047 encoded words (B), split on characters so no word exceeds 75 octets."""
    label = label or charset
    words, chunk = [], ""
    for ch in text:
        trial = chunk + ch
        if len(base64.b64encode(trial.encode(charset))) + len(label) + 7 > 75:
            words.append(chunk)
            chunk = ch
        else:
            chunk = trial
    if chunk:
        words.append(chunk)
    return "\n ".join(f"=?{label}?B?{base64.b64encode(w.encode(charset)).decode()}?=" for w in words)


def rfc2231(name: str, charset: str) -> str:
    return f"{charset}''" + quote_from_bytes(name.encode(charset.lower()), safe="")


def headers_block(headers: list[tuple[str, str]]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in headers)


def multipart(ctype: str, boundary: str, parts: list[str], preamble: str = "") -> str:
    out = f'Content-Type: {ctype};\n\tboundary="{boundary}"\n\n'
    if preamble:
        out += preamble + "\n"
    for p in parts:
        out += f"\n--{boundary}\n{p}"
    out += f"\n--{boundary}--\n"
    return out


def text_part(text: str, charset: str = "utf-8", subtype: str = "plain", cte: str = "base64") -> str:
    data = text.encode(charset)
    if cte == "base64":
        body = b64_lines(data)
    elif cte == "quoted-printable":
        body = quopri.encodestring(data).decode("ascii")
    else:
        body = text
    return (
        f'Content-Type: text/{subtype};\n\tcharset="{charset.upper() if charset != "utf-8" else "utf-8"}"\n'
        f"Content-Transfer-Encoding: {cte}\n\n{body}\n"
    )


def attachment(data: bytes, ctype: str, type_params: str, disposition: str) -> str:
    return (
        f"Content-Type: {ctype};\n\t{type_params}\n"
        f"Content-Transfer-Encoding: base64\n"
        f"Content-Disposition: {disposition}\n\n{b64_lines(data)}\n"
    )


CTYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pdf": "application/pdf",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "jpg": "image/jpeg",
    "zip": "application/x-zip-compressed",
    "eml": "message/rfc822",
}


def ctype_of(name: str) -> str:
    return CTYPES.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream")


RELAYS = {
    "163.com": "m15-112.163.com",
    "126.com": "m15-36.126.com",
    "qq.com": "smtpbg521.qq.com",
    "sina.com": "mail3-166.sinamail.sina.com.cn",
    "sina.cn": "mail3-166.sinamail.sina.com.cn",
}


def received(when: datetime, raw: bytes) -> str:
    """The receiving server's Received line: the sender's relay (from the From domain) and the time."""
    m = re.search(rb"^From:.*?<?([\w.+-]+@([\w.-]+))>?\s*$", raw, re.M)
    domain = m.group(2).decode().lower() if m else "unknown"
    helo = RELAYS.get(domain, f"mail.{domain}")
    digest = hashlib.md5(domain.encode()).digest()
    ip = f"{58 + digest[0] % 160}.{digest[1]}.{digest[2]}.{1 + digest[3] % 250}"
    smtp_id = hashlib.md5(raw[:4096] + when.isoformat().encode()).hexdigest()[:22]
    return (
        f"from {helo} (unknown [{ip}])\n\tby mx126.mail.126.com (Coremail) with SMTP id {smtp_id};\n"
        f"\t{format_datetime(when.astimezone(CST))} (CST)"
    )


def html_of(text: str) -> str:
    return (
        "<html><body>"
        + "".join(f"<div>{line or '<br>'}</div>" for line in text.split("\n"))
        + "</body></html>"
    )


# --- one builder per mail client --------------------------------------------------------------


def mail_modern(
    *,
    from_: str,
    subject: str,
    date: datetime,
    msgid: str,
    body: str,
    files: list[tuple[str, bytes]],
    boundary: str,
    extra: list[tuple[str, str]] = (),
    body_cte: str | None = None,
) -> bytes:
    """A standards-following client (government mail systems, Thunderbird): the stdlib builder."""
    from fixtures.mail import build_mail

    msg = build_mail(
        from_=from_,
        subject=subject,
        attachments=files,
        body=body,
        date=date,
        message_id=msgid,
        to=f"{MAILBOX_NAME} <{MAILBOX}>",
    )
    for k, v in extra:
        msg[k] = v
    if body_cte:
        msg.get_body(("plain",)).set_content(body, cte=body_cte)
    n = 0
    for part in msg.walk():
        if part.is_multipart():
            part.set_boundary(f"{boundary}{n}")
            n += 1
    return msg.as_bytes()


def mail_foxmail(
    *,
    from_name: str,
    from_addr: str,
    subject: str,
    date: datetime,
    msgid: str,
    body: str,
    files: list[tuple[str, bytes]],
    boundary: str,
) -> bytes:
    """Foxmail 7 (QQ): GBK encoded words, GB2312 bodies, RFC 2231 filename*=GBK''..."""
    heads = [
        ("Date", format_datetime(date)),
        ("From", f'"{ew(from_name, "gbk")}" <{from_addr}>'),
        ("To", f'"{ew(MAILBOX_NAME, "gbk")}" <{MAILBOX}>'),
        ("Subject", ew(subject, "gbk")),
        ("X-Priority", "3"),
        ("X-Has-Attach", "yes"),
        ("X-Mailer", "Foxmail 7.2.23.116[cn]"),
        ("Mime-Version", "1.0"),
        ("Message-ID", msgid),
    ]
    alt = multipart(
        "multipart/alternative",
        boundary + "_002",
        [
            text_part(body, "gb2312"),
            text_part(html_of(body), "gb2312", "html", "quoted-printable"),
        ],
    )
    parts = [alt] + [
        attachment(
            data,
            ctype_of(name),
            f'name="{ew(name, "gbk")}"',
            f"attachment;\n\tfilename*={rfc2231(name, 'GBK')}",
        )
        for name, data in files
    ]
    return (
        headers_block(heads)
        + multipart(
            "multipart/mixed", boundary + "_001", parts, "This is a multi-part message in MIME format."
        )
    ).encode("ascii")


def mail_netease(
    *,
    from_name: str,
    from_addr: str,
    subject: str,
    date: datetime,
    msgid: str,
    body: str,
    files: list[tuple[str, bytes]],
    boundary: str,
    name_only: bool,
    html_extra: str = "",
    text_extra: str = "",
    in_reply_to: str | None = None,
) -> bytes:
    """NetEase 163/126 webmail (Coremail): UTF-8 base64 words; attachment names in name= only,
    or also as an RFC 2047 word inside filename="..." (not RFC 2231)."""
    heads = [
        ("Date", format_datetime(date)),
        ("From", f'"{ew(from_name)}" <{from_addr}>'),
        ("To", MAILBOX),
        ("Subject", ew(subject, "utf-8", label="UTF-8")),
        ("X-Priority", "3"),
        ("X-Mailer", "Coremail Webmail Server Version XT5.0.13 build 20210622(1d4788a8)"),
        ("Content-Transfer-Encoding", "7bit"),
    ]
    if in_reply_to:
        heads += [("In-Reply-To", in_reply_to), ("References", in_reply_to)]
    heads += [("MIME-Version", "1.0"), ("Message-ID", msgid), ("X-Coremail-Locale", "zh_CN")]
    alt = multipart(
        "multipart/alternative",
        boundary + "_alt",
        [
            text_part(body + text_extra, "utf-8", cte="base64"),
            text_part(html_of(body).replace("</body>", html_extra + "</body>"), "utf-8", "html", "base64"),
        ],
    )
    parts = [alt]
    for name, data in files:
        word = ew(name, "utf-8", label="UTF-8")
        disp = "attachment" if name_only else f'attachment; filename="{word}"'
        parts.append(attachment(data, "application/octet-stream", f'name="{word}"', disp))
    return (headers_block(heads) + multipart("multipart/mixed", boundary, parts)).encode("ascii")


def mail_outlook(
    *,
    from_name: str,
    from_addr: str,
    subject: str,
    date: datetime,
    msgid: str,
    body: str,
    files: list[tuple[str, bytes]],
    boundary: str,
) -> bytes:
    """Outlook 2016 on Chinese Windows: gb2312 words everywhere, also inside filename="..."."""
    heads = [
        ("From", f'"{ew(from_name, "gb2312")}" <{from_addr}>'),
        ("To", f"<{MAILBOX}>"),
        ("Subject", ew(subject, "gb2312")),
        ("Date", date.strftime("%a, %d %b %Y %H:%M:%S +0800")),
        ("Message-ID", msgid),
        ("MIME-Version", "1.0"),
        ("X-Mailer", "Microsoft Outlook 16.0"),
        ("Thread-Index", "AdiFIlkKx3mT0s9eQ6S2lYcN4wG1pQ=="),
        ("Content-Language", "zh-cn"),
    ]
    alt = multipart(
        "multipart/alternative",
        boundary.replace("000", "001"),
        [
            text_part(body, "gb2312", cte="base64"),
            text_part(html_of(body), "gb2312", "html", "quoted-printable"),
        ],
    )
    parts = [alt] + [
        attachment(
            data,
            ctype_of(name),
            f'name="{ew(name, "gb2312")}"',
            f'attachment;\n\tfilename="{ew(name, "gb2312")}"',
        )
        for name, data in files
    ]
    return (
        headers_block(heads)
        + multipart("multipart/mixed", boundary, parts, "This is a multipart message in MIME format.")
    ).encode("ascii")


def mail_sina(
    *,
    from_name: str,
    from_addr: str,
    subject: str,
    date: datetime,
    msgid: str,
    body: str,
    files: list[tuple[str, bytes]],
    boundary: str,
    in_reply_to: str | None = None,
) -> bytes:
    """Sina webmail: UTF-8 words, filename as an RFC 2047 word in both name= and filename=."""
    heads = [
        ("Date", format_datetime(date)),
        ("From", f"{ew(from_name)} <{from_addr}>"),
        ("To", f"{ew(MAILBOX_NAME)} <{MAILBOX}>"),
        ("Subject", ew(subject)),
        ("Message-ID", msgid),
    ]
    if in_reply_to:
        heads += [("In-Reply-To", in_reply_to), ("References", in_reply_to)]
    heads += [("X-Mailer", "Sina WebMail 4.0"), ("MIME-Version", "1.0")]
    parts = [text_part(body, "utf-8", "plain", "base64")] + [
        attachment(data, ctype_of(name), f'name="{ew(name)}"', f'attachment; filename="{ew(name)}"')
        for name, data in files
    ]
    return (headers_block(heads) + multipart("multipart/mixed", boundary, parts)).encode("ascii")


def mail_raw8bit(
    *,
    from_name: str,
    from_addr: str,
    subject: str,
    date: datetime,
    msgid: str,
    body: str,
    files: list[tuple[str, bytes]],
    boundary: str,
) -> bytes:
    """A government OA mail gateway that writes UTF-8 straight into the headers (8-bit, no RFC 2047)."""
    heads = [
        ("Message-ID", msgid),
        ("Date", format_datetime(date)),
        ("From", f"{from_name} <{from_addr}>"),
        ("To", f"{MAILBOX_NAME} <{MAILBOX}>"),
        ("Subject", subject),
        ("MIME-Version", "1.0"),
        ("X-Mailer", "OA-Mail Gateway 3.2"),
    ]
    parts = [text_part(body, "utf-8", "plain", "8bit")] + [
        attachment(data, ctype_of(name), f'name="{name}"', f'attachment; filename="{name}"')
        for name, data in files
    ]
    return (headers_block(heads) + multipart("multipart/mixed", boundary, parts)).encode("utf-8")


def mail_qq_forward(
    *,
    from_name: str,
    from_addr: str,
    subject: str,
    date: datetime,
    msgid: str,
    body: str,
    inner: bytes,
    inner_name: str,
    boundary: str,
) -> bytes:
    """QQ Mail 'forward as attachment': the original message as a message/rfc822 part."""
    heads = [
        ("From", f'"{ew(from_name)}" <{from_addr}>'),
        ("To", f'"{ew(MAILBOX_NAME)}" <{MAILBOX}>'),
        ("Subject", ew(subject)),
        ("Mime-Version", "1.0"),
        ("Date", format_datetime(date)),
        ("X-Priority", "3"),
        ("Message-ID", msgid),
        ("X-QQ-MIME", "TCMime 1.0 by Tencent"),
        ("X-Mailer", "QQMail 2.x"),
        ("X-QQ-Mailer", "QQMail 2.x"),
    ]
    fwd = (
        f'Content-Type: message/rfc822;\n\tname="{ew(inner_name)}"\n'
        f"Content-Transfer-Encoding: 7bit\n"
        f'Content-Disposition: attachment; filename="{ew(inner_name)}"\n\n'
    ) + inner.decode("ascii")
    parts = [text_part(body, "gb18030", "plain", "base64"), fwd]
    return (headers_block(heads) + multipart("multipart/mixed", boundary, parts)).encode("ascii")


# ---------------------------------------------------------------------------------------------
# The story
# ---------------------------------------------------------------------------------------------


@dataclass
class Mail:
    key: str  # short name used in the README and tests
    arrival: datetime  # when the server delivered it (Maildir file name)
    build: Callable[[], bytes]
    unit: str | None  # expected attribution (None: unmatched)
    disposition: str = "attributed"  # expected: attributed | unmatched | duplicate
    story: str = ""
    same_as: str | None = None  # 'duplicate': delivered again with identical bytes
    method: str | None = None  # expected attribution method (None: 'address' when attributed)

    @property
    def expected_method(self) -> str | None:
        if self.disposition != "attributed":
            return None
        return self.method or "address"


@dataclass
class Materials:
    """Files made once and shared between messages (re-sent files keep their sha256)."""

    cache: dict[str, bytes] = field(default_factory=dict)

    def get(self, key: str, make: Callable[[], bytes]) -> bytes:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


M = Materials()


def sheet(unit_id: str, spec_kw: dict, fmt: str = "xlsx") -> bytes:
    spec = SheetSpec(**spec_kw)
    return M.get(
        f"sheet-{unit_id}-{fmt}", lambda: make_sheet_docx(spec) if fmt == "docx" else make_sheet_xlsx(spec)
    )


def report(
    unit_id: str,
    unit: str,
    place: str,
    highlights: list[str],
    figs: dict,
    author: str,
    fmt: str = "docx",
    date_line: str = "2022年6月",
) -> bytes:
    title = f"{unit}2022年科技活动周工作总结"
    paras = report_paragraphs(unit, place, highlights, figs)
    if fmt == "pdf":
        return M.get(f"report-{unit_id}-pdf", lambda: make_report_pdf(title, paras, date_line))
    return M.get(f"report-{unit_id}", lambda: make_report_docx(title, paras, author, date_line))


def video(
    unit_id: str, seconds: int, hue: int, fmt: str = "mp4", audio: bool = True, hevc: bool = False
) -> bytes:
    key = f"video-{unit_id}-{seconds}-{fmt}" + ("-hevc" if hevc else "")
    return M.get(key, lambda: make_video(seconds, hue=hue, fmt=fmt, audio=audio, hevc=hevc))


FIG = {
    u: figures_for(u)
    for u in (
        "taiyuan-kjj",
        "datong-kjj",
        "changzhi-kjj",
        "jinzhong-kjj",
        "yuncheng-kjj",
        "taiyuan-xcb",
        "changzhi-gxq",
        "sxu",
        "tyut",
        "sxas",
    )
}
FIG["zhuanxing"] = figures_for("zhuanxing", sums_hold=False)  # a warning, not a failure


def _kw(unit: str, contact: str, phone: str, uid: str, highlights: str, **more) -> dict:
    return dict(
        unit=unit,
        contact=contact,
        phone=phone,
        figures=more.pop("figures", FIG[uid]),
        highlights=highlights,
        **more,
    )


GREETING = "您好！\n\n"
SIGN = "\n\n此致\n敬礼！"


def _taiyuan_kjj() -> bytes:
    uid = "taiyuan-kjj"
    files = [
        (
            "2022年山西省科技活动周开展情况统计表（太原市科技局）.xlsx",
            sheet(
                uid,
                _kw(
                    "太原市科学技术局",
                    "王丽",
                    "0351-4222101",
                    uid,
                    "5月21日在太原市滨河体育中心举办全市科技活动周启动仪式暨科普集市；开展“科技大讲堂”系列讲座8场。",
                ),
            ),
        ),
        (
            "太原市2022年科技活动周工作总结.docx",
            report(
                uid,
                "太原市科学技术局",
                "全市各县（市、区）",
                [
                    "启动仪式当天设置科普展位60余个，展示了智能制造、新材料、节能环保等领域的科技创新成果。",
                    "组织高校、科研院所和重点实验室向公众开放，开展了“科技大讲堂”“科普进社区”等活动。",
                ],
                FIG[uid],
                "王丽",
                date_line="太原市科学技术局\n2022年6月6日",
            ),
        ),
        ("太原市科技活动周宣传片.mp4", video(uid, 150, 0)),
    ]
    return mail_modern(
        from_="太原市科学技术局 <tykjj@taiyuan.gov.cn>",
        subject="太原市科技局-科技活动周总结及统计表",
        date=at("2022-06-06 16:19:48"),
        msgid="<20220606161948.7a3c91e2@taiyuan.gov.cn>",
        body=GREETING + "附件为太原市2022年科技活动周开展情况统计表、工作总结和宣传视频（2分30秒），请查收。"
        "\n\n太原市科学技术局 王丽\n0351-4222101",
        files=files,
        boundary="===============taiyuan-kjj-",
    )


def _taiyuan_kjj_photos() -> bytes:
    files = [
        (f"活动照片{i}.jpg", M.get(f"photo-tykjj-{i}", lambda i=i: make_photo(f"tykjj{i}")))
        for i in (1, 2, 3)
    ]
    return mail_modern(
        from_="太原市科技局办公室 <kjjbgs@taiyuan.gov.cn>",
        subject="补充：太原市科技活动周活动照片",
        date=at("2022-06-08 15:46:30"),
        msgid="<20220608154630.19d0c4@taiyuan.gov.cn>",
        body=GREETING + "补充报送我局科技活动周启动仪式活动照片3张。\n\n太原市科技局办公室",
        files=files,
        boundary="===============taiyuan-kjj-photos-",
    )


def _changzhi_zip() -> bytes:
    uid = "changzhi-kjj"
    return M.get(
        "zip-changzhi",
        lambda: make_gbk_zip(
            [
                (
                    "长治市科技局科技活动周材料/2022年科技活动周开展情况统计表.xlsx",
                    sheet(
                        uid,
                        _kw(
                            "长治市科学技术局",
                            "李娜",
                            "0355-2028870",
                            uid,
                            "举办“科技列车长治行”活动，组织专家深入县区开展科技下乡服务。",
                        ),
                    ),
                ),
                (
                    "长治市科技局科技活动周材料/长治市2022年科技活动周工作总结.docx",
                    report(
                        uid,
                        "长治市科学技术局",
                        "全市",
                        [
                            "组织开展了“科技列车长治行”、科普进校园、科技特派员下乡服务等特色活动，",
                            "依托太行山科普基地和市科技馆开展了线上云展览。",
                        ],
                        FIG[uid],
                        "李娜",
                        date_line="长治市科学技术局\n2022年6月7日",
                    ),
                ),
                ("长治市科技局科技活动周材料/科技活动周宣传视频.mp4", video(uid, 135, 60)),
            ]
        ),
    )


def _changzhi_kjj() -> bytes:
    return mail_modern(
        from_="长治市科学技术局 <czkjj@changzhi.gov.cn>",
        subject="关于报送2022年科技活动周开展情况的函",
        date=at("2022-06-08 10:05:12"),
        msgid="<5f1e2d3c.20220608100512@changzhi.gov.cn>",
        body="省科技厅人才与创新团队处：\n\n按照晋科发〔2022〕58号文件要求，现将我市2022年科技活动周开展情况统计表、"
        "总结报告及影像资料报送贵处（见压缩包），请审阅。"
        + SIGN
        + "\n\n长治市科学技术局\n联系人：李娜 0355-2028870",
        files=[("长治市科技局科技活动周材料.zip", _changzhi_zip())],
        boundary="===============changzhi-",
    )


def _changzhi_kjj_again() -> bytes:
    return mail_modern(
        from_="长治市科学技术局 <czkjj@changzhi.gov.cn>",
        subject="Re: 关于报送2022年科技活动周开展情况的函",
        date=at("2022-06-26 10:01:40"),
        msgid="<5f1e2d3c.20220626100140@changzhi.gov.cn>",
        body="您好，按电话通知，将我市材料重新发送一遍（与6月8日所发相同），请查收。\n\n长治市科学技术局 李娜",
        files=[("长治市科技局科技活动周材料.zip", _changzhi_zip())],
        boundary="===============changzhi2-",
        extra=[("In-Reply-To", "<5f1e2d3c.20220608100512@changzhi.gov.cn>")],
    )


def _taiyuan_xcb() -> bytes:
    uid = "taiyuan-xcb"
    files = [
        (
            "2022年山西省科技活动周开展情况统计表.docx",
            sheet(
                uid,
                _kw(
                    "中共太原市委宣传部",
                    "陈静",
                    "0351-4224567",
                    uid,
                    "联合市属媒体开设“科技活动周”专栏，推出系列科普短视频。",
                ),
                fmt="docx",
            ),
        ),
        (
            "太原市委宣传部科技活动周工作总结.pdf",
            report(
                uid,
                "中共太原市委宣传部",
                "全市",
                [
                    "指导太原日报、太原广播电视台开设“走进科技 你我同行”专栏，",
                    "联合市科协推出“科学家精神”系列短视频，累计播放量超过百万次。",
                ],
                FIG[uid],
                "陈静",
                fmt="pdf",
                date_line="中共太原市委宣传部  2022年6月9日",
            ),
        ),
        # an iPhone's HEVC .MOV without sound: a warning; the web page plays a converted copy
        ("科技活动周专题片.mov", video(uid, 95, 120, fmt="mov", audio=False, hevc=True)),
    ]
    return mail_foxmail(
        from_name="太原市委宣传部",
        from_addr="tyswxcb@qq.com",
        subject="关于报送2022年科技活动周开展情况的函",
        date=at("2022-06-10 11:26:31"),
        msgid="<202206101126311842739@qq.com>",
        body=GREETING + "现将我部2022年科技活动周开展情况统计表、总结和专题片报送，请查收。\n\n"
        "中共太原市委宣传部 陈静\n0351-4224567",
        files=files,
        boundary="----=_NextPart220610112631842739",
    )


def big_link(p: str, name: str) -> str:
    """A NetEase 超大附件 download address as 163 mail writes it into the message body."""
    from urllib.parse import quote

    return (
        f"https://mail.163.com/large-attachment-download/index.html?p={p}"
        f"&file={quote(name)}&title={quote(name.rsplit('.', 1)[0])}"
    )


BIG_LINK = big_link("X66x4AIAOBgA6nT0ZAAAsW", "大同市科技活动周宣传片.mp4")


def _datong_question() -> bytes:
    return mail_netease(
        from_name="大同市科技局",
        from_addr="dtkjj2022@163.com",
        subject="咨询统计表填报口径",
        date=at("2022-06-02 10:41:05"),
        msgid="<3c7a1f20.5e21.18122f0a1b3.Coremail.dtkjj2022@163.com>",
        body=GREETING
        + "请问统计表中“参与人数”是按万人次填报吗？线上直播的观看人次是否计入？\n\n大同市科技局 张强",
        files=[],
        boundary="----=_Part_120022_1843061123.1654137665000",
        name_only=True,
    )


def _datong() -> bytes:
    uid = "datong-kjj"
    files = [
        (
            "大同市2022年科技活动周开展情况统计表.xlsx",
            sheet(
                uid,
                _kw(
                    "大同市科学技术局",
                    "张强",
                    "0352-2043311",
                    uid,
                    "在大同市科技馆举办“科技活动周”主场活动，开展“科普大篷车”进乡村活动。",
                ),
            ),
        ),
        (
            "大同市科技局2022年科技活动周总结.docx",
            report(
                uid,
                "大同市科学技术局",
                "全市",
                [
                    "在市科技馆举办主场活动，组织“科普大篷车”深入广灵、灵丘等县乡村巡展，",
                    "围绕煤炭清洁高效利用和新能源开展了专题科普宣传。",
                ],
                FIG[uid],
                "张强",
                date_line="大同市科学技术局\n2022年6月12日",
            ),
        ),
    ]
    html = (
        f'<div style="border:1px solid #ccc;padding:8px"><b>从网易163邮箱发来的超大附件</b><br>'
        f'<a href="{BIG_LINK}">大同市科技活动周宣传片.mp4</a> (186.52M, 2022年6月28日 09:18 到期)</div>'
    )
    text = (
        "\n\n从网易163邮箱发来的超大附件\n\n大同市科技活动周宣传片.mp4 (186.52M, 2022年6月28日 09:18 到期)\n"
        f"下载地址：{BIG_LINK}\n"
    )
    return mail_netease(
        from_name="大同市科技局",
        from_addr="dtkjj2022@163.com",
        subject="大同市科技局2022年科技活动周材料报送",
        date=at("2022-06-13 09:18:21"),
        msgid="<7d1b2e4f.6a33.1815a3c4d2e.Coremail.dtkjj2022@163.com>",
        body=GREETING
        + "附件是我局科技活动周统计表和总结，宣传片较大，以超大附件形式发送，请下载。\n\n大同市科技局 张强",
        files=files,
        boundary="----=_Part_231877_1927309381.1655082501000",
        name_only=True,
        html_extra=html,
        text_extra=text,
    )


def _datong_again() -> bytes:
    link = big_link("X66x4AIAOBgA7cR2ZAAAsX", "大同市科技活动周宣传片（压缩版）.mp4")
    html = (
        f'<div style="border:1px solid #ccc;padding:8px"><b>从网易163邮箱发来的超大附件</b><br>'
        f'<a href="{link}">大同市科技活动周宣传片（压缩版）.mp4</a> (92.18M, 2022年7月10日 22:46 到期)</div>'
    )
    text = (
        "\n\n从网易163邮箱发来的超大附件\n\n大同市科技活动周宣传片（压缩版）.mp4 (92.18M, 2022年7月10日 22:46 到期)\n"
        f"下载地址：{link}\n"
    )
    return mail_netease(
        from_name="大同市科技局",
        from_addr="dtkjj2022@163.com",
        subject="Re: 材料补充",
        date=at("2022-06-25 22:46:40"),
        msgid="<0b9c8d7e.7f10.18199c0d5a2.Coremail.dtkjj2022@163.com>",
        body="您好，视频已压缩后重新上传，请通过下面的链接下载。\n\n张强",
        files=[],
        boundary="----=_Part_301766_1120398127.1656168400000",
        name_only=True,
        html_extra=html,
        text_extra=text,
        in_reply_to="<20220624160000.reminder-datong@126.com>",
    )


def _sxas_inner() -> bytes:
    uid = "sxas"
    files = [
        (
            "山西省科学院科技活动周统计表.xlsx",
            sheet(
                uid,
                _kw(
                    "山西省科学院",
                    "冯磊",
                    "0351-4041111",
                    uid,
                    "院属重点实验室和科普基地向公众开放，开展“科学家进校园”活动。",
                ),
            ),
        ),
        (
            "山西省科学院2022年科技活动周工作总结.docx",
            report(
                uid,
                "山西省科学院",
                "院属各单位",
                [
                    "院属5个重点实验室和2个省级科普基地面向社会公众开放，",
                    "组织科研人员走进太原市多所中小学开展“科学家进校园”报告会。",
                ],
                FIG[uid],
                "冯磊",
                date_line="山西省科学院\n2022年6月13日",
            ),
        ),
        ("省科学院科技活动周视频.mp4", video(uid, 170, 200)),
    ]
    return mail_modern(
        from_="山西省科学院办公室 <office@sxas.ac.cn>",
        subject="山西省科学院2022年科技活动周开展情况报送",
        date=at("2022-06-14 16:52:09"),
        msgid="<20220614165209.3b8e71@sxas.ac.cn>",
        body="吴老师您好：\n\n我院科技活动周统计表、总结和视频已整理完毕，请查收。\n\n山西省科学院办公室 冯磊",
        files=files,
        boundary="===============sxas-",
        body_cte="base64",
    )


def _sxas_forward() -> bytes:
    return mail_qq_forward(
        from_name="吴玉祥",
        from_addr="394817265@qq.com",
        subject="转发：山西省科学院2022年科技活动周开展情况报送",
        date=at("2022-06-15 08:46:50"),
        msgid="<tencent_4A7F2C1D9E3B5A6C8D0E1F2A3B4C5D6E7F08@qq.com>",
        body="省科学院的材料误发到我个人邮箱了，转到工作邮箱，请一并登记。\n\n吴玉祥",
        inner=_sxas_inner(),
        inner_name="山西省科学院2022年科技活动周开展情况报送.eml",
        boundary="----=_NextPart_62A92B5A_0A4B3C70_1B8E2F61",
    )


def _zhuanxing_first() -> bytes:
    uid = "zhuanxing"
    files = [
        (
            "综改区2022年科技活动周工作总结.docx",
            report(
                uid,
                "山西转型综合改革示范区管理委员会",
                "示范区",
                [
                    "组织区内高新技术企业、新型研发机构开放生产线和研发中心，",
                    "举办“创新创业沙龙”和青少年科技实践体验活动。",
                ],
                FIG[uid],
                "周婷",
                date_line="山西转型综合改革示范区管理委员会\n2022年6月15日",
            ),
        ),
        ("综改区科技活动周视频.mp4", video(uid, 118, 280)),
    ]
    return mail_netease(
        from_name="综改区科技创新局",
        from_addr="zgsfq_kj@126.com",
        subject="综改区2022年科技活动周总结材料",
        date=at("2022-06-16 14:32:58"),
        msgid="<1a2b3c4d.2f81.18166e3a7b9.Coremail.zgsfq_kj@126.com>",
        body=GREETING
        + "报送我区科技活动周工作总结及视频，统计表正在汇总，随后补报。\n\n综改区科技创新局 周婷",
        files=files,
        boundary="----=_Part_412233_1038472615.1655361178000",
        name_only=False,
    )


def _zhuanxing_sheet() -> bytes:
    uid = "zhuanxing"
    files = [
        (
            "综改区科技活动周开展情况统计表.xlsx",
            sheet(
                uid,
                _kw(
                    "山西转型综合改革示范区管理委员会",
                    "周婷",
                    "0351-5601234",
                    uid,
                    "企业开放日12场，青少年科技实践体验活动3场。",
                    note="活动总数含4项企业自办活动，未区分线上线下。",
                ),
            ),
        )
    ]
    return mail_netease(
        from_name="综改区科技创新局",
        from_addr="zgsfq_kj@126.com",
        subject="Re: 材料补充",
        date=at("2022-06-22 11:08:30"),
        msgid="<6e5d4c3b.3a92.18189b2c4f1.Coremail.zgsfq_kj@126.com>",
        body="您好，补报我区统计表，请查收。\n\n周婷\n\n"
        '在 2022-06-21 17:05:12，"省科技厅人才处" <sxskjtrcc@126.com> 写道：\n'
        ">综改区：你区统计表尚未报送，请于6月25日前补报。",
        files=files,
        boundary="----=_Part_533190_2047716231.1655867310000",
        name_only=False,
        in_reply_to="<20220621170512.reminder-zhuanxing@126.com>",
    )


JINZHONG_FIGS = {
    "活动总数": "约20",
    "线上活动": 6,
    "线下活动": 14,
    "参与人数": "3.5万",
    "线上参与": 2.3,
    "线下参与": 1.2,
    "参与科技人员": "120",
    "开放实验室及科普基地": 8,
    "科普讲座": 15,
    "科普展览": 4,
    "发放科普资料": 1.6,
    "媒体报道": 26,
    "投入经费": 12.5,
}


def _jinzhong() -> bytes:
    uid = "jinzhong-kjj"
    files = [
        (
            "晋中市科技活动周统计表.xlsx",
            sheet(
                uid,
                _kw(
                    "晋中市科学技术局",
                    "赵敏",
                    "0354-3021456",
                    uid,
                    "在晋中市体育公园举办科普集市，开展农业科技下乡活动。",
                    figures=JINZHONG_FIGS,
                    spaced_labels=True,
                ),
            ),
        ),
        (
            "晋中市2022年科技活动周总结.docx",
            report(
                uid,
                "晋中市科学技术局",
                "全市11个县（区、市）",
                [
                    "在市体育公园举办科普集市，组织农业专家深入太谷、祁县等地开展种子选育和农技服务，",
                    "依托山西农业大学开展了面向中小学生的科学实验展演。",
                ],
                FIG[uid],
                "赵敏",
                date_line="晋中市科学技术局\n2022年6月16日",
            ),
        ),
        ("晋中市科技活动周纪实.mp4", video(uid, 200, 320)),
    ]
    return mail_sina(
        from_name="晋中市科技局",
        from_addr="jzkjj@sina.com",
        subject="晋中市科技局报送科技活动周材料",
        date=at("2022-06-17 10:11:40"),
        msgid="<20220617021140.4F8B1B400AE@webmail.sinamail.sina.com.cn>",
        body=GREETING + "现报送我市科技活动周统计表、总结及纪实视频。\n\n晋中市科技局 赵敏",
        files=files,
        boundary="=-sinamail_alt_5ab7c1f0a2d9e3b4c6d8",
    )


def _jinzhong_photos() -> bytes:
    files = [
        (f"晋中科普集市{i}.jpg", M.get(f"photo-jz-{i}", lambda i=i: make_photo(f"jz{i}"))) for i in (1, 2)
    ]
    return mail_sina(
        from_name="晋中市科技局",
        from_addr="jzkjj@sina.com",
        subject="Re: 材料补充",
        date=at("2022-06-24 10:29:37"),
        msgid="<20220624022937.6C1D2E3F4A5@webmail.sinamail.sina.com.cn>",
        body="您好，视频正在重新剪辑压缩到3分钟以内，先补充两张活动照片。\n\n赵敏",
        files=files,
        boundary="=-sinamail_alt_7c9d1e2f3a4b5c6d7e8f",
        in_reply_to="<20220623091500.reminder-jinzhong@126.com>",
    )


TYUT_FIGS = dict(figures_for("tyut"))
for _label in ("参与人数", "线上参与", "线下参与", "投入经费"):
    TYUT_FIGS[_label] = None  # left blank: the sheet cannot be counted


def _tyut() -> bytes:
    uid = "tyut"
    files = [
        (
            "太原理工大学科技活动周开展情况统计表.xlsx",
            sheet(
                uid,
                _kw(
                    "太原理工大学",
                    "郑洁",
                    "0351-6011234",
                    uid,
                    "国家重点实验室开放日，举办“院士讲科学”报告会。",
                    figures=TYUT_FIGS,
                ),
            ),
        ),
        (
            "太原理工大学2022年科技活动周总结.docx",
            report(
                uid,
                "太原理工大学",
                "明向、迎西、虎峪三个校区",
                [
                    "学校所属国家重点实验室和省级重点实验室面向社会开放，",
                    "邀请院士专家举办“院士讲科学”报告会，组织大学生科普志愿者走进社区。",
                ],
                FIG[uid],
                "郑洁",
                date_line="太原理工大学科学技术处\n2022年6月20日",
            ),
        ),
        ("太原理工大学科技活动周.mp4", video(uid, 160, 40)),
    ]
    return mail_netease(
        from_name="郑洁",
        from_addr="zhengjie_2008@163.com",
        subject="太原理工大学2022年科技活动周开展情况报送",
        date=at("2022-06-20 16:55:03"),
        msgid="<2e4f6a8c.7b21.1817f9d0e44.Coremail.zhengjie_2008@163.com>",
        body=GREETING
        + "单位邮箱附件发送失败，用个人邮箱报送我校科技活动周材料，请查收。\n\n太原理工大学科技处 郑洁",
        files=files,
        boundary="----=_Part_78421_88102934.1655715303000",
        name_only=True,
    )


def _sxu_sheet() -> bytes:
    return sheet(
        "sxu",
        _kw(
            "山西大学",
            "吴刚",
            "0351-7011234",
            "sxu",
            "举办“走进科技 你我同行”校园科技节，博物馆和实验室向中小学生开放。",
        ),
    )


def _sxu() -> bytes:
    uid = "sxu"
    files = [
        ("山西大学科技活动周统计表.xlsx", _sxu_sheet()),
        (
            "山西大学2022年科技活动周工作总结.docx",
            report(
                uid,
                "山西大学",
                "坞城、东山、大东关校区",
                [
                    "举办校园科技节，校史馆、生物博物馆和省部共建重点实验室向中小学生开放，",
                    "组织“量子光学”“黄河文化”等主题科普讲座。",
                ],
                FIG[uid],
                "吴刚",
                date_line="山西大学科学技术处\n2022年6月20日",
            ),
        ),
        ("山西大学科技活动周视频.mp4", fake_video_html()),
    ]
    return mail_outlook(
        from_name="山西大学科技处",
        from_addr="kjc@sxu.edu.cn",
        subject="山西大学科技活动周总结材料",
        date=at("2022-06-21 09:40:02"),
        msgid="<000a01d88522$5b3c7e10$11b57a30$@sxu.edu.cn>",
        body=GREETING
        + "附件为山西大学2022年科技活动周统计表、工作总结和视频，请查收。\n\n山西大学科学技术处 吴刚",
        files=files,
        boundary="----=_NextPart_000_000B_01D88565.6961BE10",
    )


def _tyut_joint() -> bytes:
    """太原理工's clerk sends the sheet of the joint event again: the file is 山西大学's own sheet
    (its 填报单位 says 山西大学), from the unit's registered address."""
    files = [("科技活动周统计表（联合举办）.xlsx", _sxu_sheet())]
    return mail_modern(
        from_="太原理工大学科学技术处 <kjc@tyut.edu.cn>",
        subject="太原理工大学科技活动周统计表（更正）",
        date=at("2022-06-24 16:02:11"),
        msgid="<20220624160211.4c1d@tyut.edu.cn>",
        body=GREETING
        + "之前报送的统计表有空项，现重新发送更正后的统计表，请以此为准。\n\n太原理工大学科学技术处 郑洁",
        files=files,
        boundary="=_tyut_joint_",
    )


def _changzhi_gxq() -> bytes:
    uid = "changzhi-gxq"
    files = [
        (
            "长治高新区科技活动周统计表.xlsx",
            sheet(
                uid,
                _kw(
                    "长治高新技术产业开发区管理委员会",
                    "孙伟",
                    "0355-8011234",
                    uid,
                    "组织区内企业开放日和创新创业大赛宣讲。",
                ),
            ),
        ),
        (
            "长治高新区科技活动周总结.docx",
            M.get(
                "report-gxq-short",
                lambda: make_report_docx(
                    "长治高新区2022年科技活动周总结",
                    [
                        "我区按照通知要求组织开展了科技活动周活动，企业开放日4场，科普讲座6场，具体数据详见统计表。"
                    ],
                    "孙伟",
                    "2022年6月23日",
                ),
            ),
        ),
        ("长治高新区科技活动周.mp4", video(uid, 88, 160)),
        ("企业开放日.jpg", M.get("photo-gxq", lambda: make_photo("gxq"))),
    ]
    return mail_netease(
        from_name="孙伟",
        from_addr="sw19850312@126.com",
        subject="长治高新区管委会-2022年科技活动周材料报送",
        date=at("2022-06-23 15:21:02"),
        msgid="<41c3e5a7.4c12.1818edb6f20.Coremail.sw19850312@126.com>",
        body=GREETING + "报送长治高新区科技活动周统计表、总结和视频，请查收。\n\n长治高新区管委会 孙伟",
        files=files,
        boundary="----=_Part_95511_1301877230.1655968862000",
        name_only=False,
    )


def _yuncheng() -> bytes:
    uid = "yuncheng-kjj"
    files = [
        (
            "运城市科技活动周开展情况统计表.xlsx",
            sheet(
                uid,
                _kw(
                    "运城市科学技术局",
                    "刘洋",
                    "0359-2688012",
                    uid,
                    "举办河东科普大讲堂，开展果业科技服务进万家活动。",
                ),
            ),
        ),
        (
            "运城市2022年科技活动周工作总结.docx",
            report(
                uid,
                "运城市科学技术局",
                "全市13个县（市、区）",
                [
                    "举办“河东科普大讲堂”，组织果业、畜牧专家深入临猗、万荣等地开展科技服务，",
                    "在盐湖区开展了生态保护主题科普展览。",
                ],
                FIG[uid],
                "刘洋",
                date_line="运城市科学技术局\n2022年6月27日",
            ),
        ),
        ("运城市科技活动周.mp4", video(uid, 142, 240)),
    ]
    return mail_raw8bit(
        from_name="运城市科学技术局",
        from_addr="yckjj@yuncheng.gov.cn",
        subject="运城市科技局关于报送2022年科技活动周开展情况的报告",
        date=at("2022-06-27 09:12:18"),
        msgid="<OA.20220627091218.00417@yuncheng.gov.cn>",
        body="省科技厅：\n\n因我局人员调整，材料报送延迟，现将我市科技活动周开展情况统计表、总结报告及视频报送，敬请谅解。"
        + SIGN
        + "\n\n运城市科学技术局",
        files=files,
        boundary="OA_boundary_20220627091218_00417",
    )


def _inquiry() -> bytes:
    return mail_netease(
        from_name="李明",
        from_addr="liming_88@163.com",
        subject="咨询：科技活动周统计表模板",
        date=at("2022-06-01 09:31:55"),
        msgid="<5b6c7d8e.1d22.181209b7c01.Coremail.liming_88@163.com>",
        body=GREETING
        + "请问科技活动周的统计表模板在哪里可以下载？我们是县里的，不知道是否需要报送。\n\n李明",
        files=[],
        boundary="----=_Part_30117_55120934.1654047115000",
        name_only=True,
    )


def _newspaper() -> bytes:
    return mail_netease(
        from_name="科学导报发行部",
        from_addr="kxdbfx@sina.cn",
        subject="关于征订2022年下半年《科学导报》的函",
        date=at("2022-06-28 14:04:51"),
        msgid="<7f8e9d0c.5a11.1819a3e1b27.Coremail.kxdbfx@sina.cn>",
        body="各有关单位：\n\n2022年下半年《科学导报》征订工作已经开始，欢迎订阅。\n\n科学导报发行部",
        files=[],
        boundary="----=_Part_61199_99120711.1656396291000",
        name_only=True,
    )


STORY: list[Mail] = [
    Mail(
        "inquiry",
        at("2022-06-01 09:32:18"),
        _inquiry,
        None,
        "unmatched",
        "a county staff member asks where the template is: unknown personal address, no unit name",
    ),
    Mail(
        "datong-question",
        at("2022-06-02 10:41:33"),
        _datong_question,
        "datong-kjj",
        story="大同 asks a question before sending anything (no attachments)",
    ),
    Mail(
        "taiyuan-kjj",
        at("2022-06-06 16:20:07"),
        _taiyuan_kjj,
        "taiyuan-kjj",
        story="complete: sheet .xlsx, report .docx, 2:30 video (stdlib/RFC 2231 names)",
    ),
    Mail(
        "taiyuan-kjj-dup",
        at("2022-06-06 16:20:11"),
        _taiyuan_kjj,
        "taiyuan-kjj",
        "duplicate",
        "the same message delivered twice (same Message-ID and bytes)",
        same_as="taiyuan-kjj",
    ),
    Mail(
        "changzhi-kjj",
        at("2022-06-08 10:05:44"),
        _changzhi_kjj,
        "changzhi-kjj",
        story="everything in a zip made on Windows: GBK member names without the UTF-8 flag",
    ),
    Mail(
        "taiyuan-kjj-photos",
        at("2022-06-08 15:47:02"),
        _taiyuan_kjj_photos,
        "taiyuan-kjj",
        story="photos from the unit's second address",
    ),
    Mail(
        "taiyuan-xcb",
        at("2022-06-10 11:26:39"),
        _taiyuan_xcb,
        "taiyuan-xcb",
        story="Foxmail GBK: sheet as a .docx table, report .pdf, video .mov",
    ),
    Mail(
        "datong",
        at("2022-06-13 09:18:55"),
        _datong,
        "datong-kjj",
        story="NetEase 163 (name= only); the video is a 超大附件 download link, not attached",
    ),
    Mail(
        "sxas-forward",
        at("2022-06-15 08:47:13"),
        _sxas_forward,
        "sxas",
        story="staff forward (message/rfc822) from a personal qq.com address of 省科学院's mail; "
        "the subject names the unit, which decides before the forwarded sender",
        method="name",
    ),
    Mail(
        "zhuanxing",
        at("2022-06-16 14:33:20"),
        _zhuanxing_first,
        "zhuanxing",
        story="126 mail: report and video, sheet to follow",
    ),
    Mail(
        "jinzhong",
        at("2022-06-17 10:12:09"),
        _jinzhong,
        "jinzhong-kjj",
        story="Sina: sheet with spaced labels and '约20'/'3.5万'; video lasts 3:20",
    ),
    Mail(
        "tyut",
        at("2022-06-20 16:55:41"),
        _tyut,
        "tyut",
        story="personal 163 address, unit named in the subject; sheet with blank figures",
        method="name",
    ),
    Mail(
        "sxu",
        at("2022-06-21 09:40:27"),
        _sxu,
        "sxu",
        story="Outlook gb2312 (RFC 2047 inside filename=); the .mp4 is an HTML page",
    ),
    Mail(
        "zhuanxing-sheet",
        at("2022-06-22 11:08:52"),
        _zhuanxing_sheet,
        "zhuanxing",
        story="'Re: 材料补充' with the missing sheet (its sums disagree: a warning only)",
    ),
    Mail(
        "changzhi-gxq",
        at("2022-06-23 15:21:36"),
        _changzhi_gxq,
        "changzhi-gxq",
        story="personal 126 address, '长治高新区' in the subject (not 长治市科技局); report too short",
        method="name",
    ),
    Mail(
        "jinzhong-photos",
        at("2022-06-24 10:30:00"),
        _jinzhong_photos,
        "jinzhong-kjj",
        story="'Re: 材料补充' with photos only; the long video still counts",
    ),
    Mail(
        "tyut-joint",
        at("2022-06-24 16:02:40"),
        _tyut_joint,
        "tyut",
        story="a 'corrected' sheet that is 山西大学's own (填报单位 山西大学): invalid for 太原理工, "
        "山西大学's figures count once",
    ),
    Mail(
        "datong-link-again",
        at("2022-06-25 22:47:15"),
        _datong_again,
        "datong-kjj",
        story="an hour before the deadline: a new 超大附件 link, still no video file",
    ),
    Mail(
        "changzhi-kjj-again",
        at("2022-06-26 10:02:33"),
        _changzhi_kjj_again,
        "changzhi-kjj",
        story="the same zip again after the deadline: not late (first arrival counts)",
    ),
    Mail(
        "yuncheng",
        at("2022-06-27 09:12:44"),
        _yuncheng,
        "yuncheng-kjj",
        story="raw 8-bit UTF-8 headers; everything arrives two days late",
    ),
    Mail(
        "newspaper",
        at("2022-06-28 14:05:10"),
        _newspaper,
        None,
        "unmatched",
        "a newspaper subscription offer: unknown sender",
    ),
]

OK = {"state": "ok", "late": False}
EXPECTED_STATUS: dict[str, dict] = {
    "taiyuan-kjj": {
        "state": "complete",
        "late": False,
        "items": {"statistics": OK, "report": OK, "video": OK},
    },
    "datong-kjj": {
        "state": "incomplete",
        "late": False,
        "items": {"statistics": OK, "report": OK, "video": {"state": "invalid", "reason~": "link"}},
    },
    "changzhi-kjj": {
        "state": "complete",
        "late": False,
        "items": {"statistics": OK, "report": OK, "video": OK},
    },
    "jinzhong-kjj": {
        "state": "incomplete",
        "late": False,
        "items": {"statistics": OK, "report": OK, "video": {"state": "invalid", "reason~": "3:20"}},
    },
    "yuncheng-kjj": {
        "state": "complete",
        "late": True,
        "items": {
            "statistics": {"state": "ok", "late": True},
            "report": {"state": "ok", "late": True},
            "video": {"state": "ok", "late": True},
        },
    },
    "taiyuan-xcb": {
        "state": "complete",
        "late": False,
        "items": {"statistics": OK, "report": OK, "video": OK},
    },
    "taiyuan-kx": {
        "state": "exempt",
        "late": False,
        "items": {
            "statistics": {"state": "missing"},
            "report": {"state": "missing"},
            "video": {"state": "missing"},
        },
    },
    "changzhi-gxq": {
        "state": "incomplete",
        "late": False,
        "items": {"statistics": OK, "report": {"state": "invalid"}, "video": OK},
    },
    "zhuanxing": {"state": "complete", "late": False, "items": {"statistics": OK, "report": OK, "video": OK}},
    "sxu": {
        "state": "incomplete",
        "late": False,
        "items": {"statistics": OK, "report": OK, "video": {"state": "invalid", "reason~": "not a video"}},
    },
    "tyut": {
        "state": "incomplete",
        "late": False,
        "items": {"statistics": {"state": "invalid", "reason~": "山西大学"}, "report": OK, "video": OK},
    },
    "sxas": {"state": "complete", "late": False, "items": {"statistics": OK, "report": OK, "video": OK}},
}

# What staff decide after the first poll (decisions are not mail: `make demo` runs them after
# `ingest --once`, tests/test_samples.py checks the Makefile says the same): 太原市科协 does not take
# part this year, and the newspaper's subscription offer is not campaign material.
STAFF_DECISIONS: list[list[str]] = [
    ["exempt", "taiyuan-kx", "--note", "本年度未承办科技活动周活动"],
    ["dismiss", "<7f8e9d0c.5a11.1819a3e1b27.Coremail.kxdbfx@sina.cn>", "--note", "报刊征订广告"],
    [
        "answered",
        "<3c7a1f20.5e21.18122f0a1b3.Coremail.dtkjj2022@163.com>",
        "--note",
        "电话答复：按万人次填报，直播观看人次计入",
    ],
]


# ---------------------------------------------------------------------------------------------
# Writing the Maildir
# ---------------------------------------------------------------------------------------------


def maildir_name(mail: Mail, index: int) -> tuple[str, str]:
    """(subdir, base name): '<unix time>.M<usec>P<pid>.<host>', read mail in cur/ with ':2,S'."""
    ts = int(mail.arrival.timestamp())
    usec = (index * 104729 + 31337) % 1_000_000
    pid = 20000 + index * 37
    base = f"{ts}.M{usec}P{pid}.{DELIVERY_HOST}"
    if mail.arrival <= DEADLINE:  # staff have read everything up to the deadline
        return "cur", base + ":2,S"
    return "new", base


def render(mail: Mail, cache: dict[str, bytes]) -> bytes:
    """The message as stored: the receiving server's Received header, then the message."""
    if mail.same_as:
        return cache[mail.same_as]
    raw = mail.build()
    out = f"Received: {received(mail.arrival, raw)}\n".encode("ascii") + raw
    cache[mail.key] = out
    return out


def tool_versions() -> dict[str, str]:
    import docx
    import openpyxl
    import PIL
    import reportlab

    ff = subprocess.run(
        ["ffmpeg", "-version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    return {
        "ffmpeg": ff,
        "openpyxl": openpyxl.__version__,
        "python-docx": getattr(docx, "__version__", "?"),
        "reportlab": reportlab.Version,
        "Pillow": PIL.__version__,
        "python": ".".join(map(str, sys.version_info[:2])),
    }


def generate(out: Path) -> dict[str, str]:
    """Write the Maildir under ``out`` (replacing it); returns {relative path: sha256}."""
    if out.exists():
        shutil.rmtree(out)
    for sub in ("cur", "new", "tmp"):
        (out / sub).mkdir(parents=True)
    (out / "tmp" / ".keep").write_bytes(b"")
    cache: dict[str, bytes] = {}
    manifest = {}
    for i, mail in enumerate(STORY):
        data = render(mail, cache)
        sub, base = maildir_name(mail, i)
        path = out / sub / base
        path.write_bytes(data)
        manifest[f"{sub}/{base}"] = hashlib.sha256(data).hexdigest()
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "samples" / "maildir", help="Maildir to (re)create")
    ap.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="where to write GENERATED.json (default: next to the Maildir)",
    )
    args = ap.parse_args(argv)
    files = generate(args.out)
    manifest_path = args.manifest or args.out.parent / "GENERATED.json"
    total = sum((args.out / p).stat().st_size for p in files)
    manifest_path.write_text(
        json.dumps({"tools": tool_versions(), "files": files}, ensure_ascii=False, indent=2) + "\n",
        encoding="utf-8",
    )
    print(f"wrote {len(files)} messages ({total / 1024:.0f} KiB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
