"""The bundled sample mailbox (samples/maildir) that `make demo` ingests.

Checks that the committed files are what scripts/make_samples.py produces (so nobody edits them
by hand and the generator stays deterministic), that the Maildir is well formed and small, and
that ingesting a copy of samples/ tells the story written in the generator's STORY and
EXPECTED_STATUS: who is complete, incomplete, late or missing, and why.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
SCRIPT = REPO / "scripts" / "make_samples.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("make_samples", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = mod
    spec.loader.exec_module(mod)
    return mod


ms = _load_script()


def _filenames(message) -> list[str]:
    return [p.get_filename() for p in message.walk() if p.get_filename()]


def _files(maildir: Path) -> dict[str, str]:
    return {
        f"{p.parent.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for sub in ("cur", "new")
        for p in sorted((maildir / sub).iterdir())
    }


@pytest.fixture(scope="session")
def regenerated(tmp_path_factory, ffmpeg_available) -> list[Path]:
    """The generator run twice into fresh directories (a few seconds: tiny ffmpeg videos)."""
    outs = []
    for n in (1, 2):
        root = tmp_path_factory.mktemp(f"samples{n}")
        subprocess.run(
            [sys.executable, str(SCRIPT), "--out", str(root / "maildir")],
            check=True,
            capture_output=True,
            timeout=300,
        )
        outs.append(root)
    return outs


def test_generator_is_deterministic(regenerated):
    a, b = regenerated
    assert _files(a / "maildir") == _files(b / "maildir")
    assert len(_files(a / "maildir")) == len(ms.STORY)


def test_committed_files_are_untouched_generator_output():
    """Every committed message is listed with its checksum in GENERATED.json."""
    manifest = json.loads((SAMPLES / "GENERATED.json").read_text(encoding="utf-8"))
    assert _files(SAMPLES / "maildir") == manifest["files"]


def test_committed_samples_match_the_generator(regenerated):
    committed = json.loads((SAMPLES / "GENERATED.json").read_text(encoding="utf-8"))
    fresh = json.loads((regenerated[0] / "GENERATED.json").read_text(encoding="utf-8"))
    # Same messages, same delivery times and folders, whatever the tool versions.
    assert sorted(fresh["files"]) == sorted(committed["files"])
    if fresh["tools"] != committed["tools"]:
        # ffmpeg/x264, openpyxl, python-docx, reportlab or Pillow differ from the machine that
        # made the committed files: bytes may differ; compare what the messages say instead.
        for name in committed["files"]:
            old = email.message_from_bytes(
                (SAMPLES / "maildir" / name).read_bytes(), policy=email.policy.default
            )
            new = email.message_from_bytes(
                (regenerated[0] / "maildir" / name).read_bytes(), policy=email.policy.default
            )
            for h in ("Message-ID", "From", "Subject", "Date"):
                assert str(old[h]) == str(new[h]), (name, h)
            assert _filenames(old) == _filenames(new), name
        pytest.skip(
            f"tool versions differ from the committed samples' ({committed['tools']}); "
            "structure compared, bytes not: rerun scripts/make_samples.py to refresh"
        )
    assert fresh["files"] == committed["files"], "run: .venv/bin/python scripts/make_samples.py"


def test_sample_directory_is_small():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024, f"samples/ is {total / 1e6:.1f} MB"


def test_maildir_names_carry_the_delivery_time():
    names = sorted(_files(SAMPLES / "maildir"), key=lambda n: n.split("/", 1)[1])
    assert len(names) == len(ms.STORY)
    arrivals = [m.arrival for m in ms.STORY]
    assert arrivals == sorted(arrivals), "STORY must be in arrival order"
    for name, mail in zip(names, ms.STORY, strict=False):
        folder, base = name.split("/", 1)
        assert int(base.split(".", 1)[0]) == int(mail.arrival.timestamp()), name
        if folder == "cur":
            assert base.endswith(":2,S")
        else:
            assert ":" not in base
    # Both folders are used: read mail in cur/, unread (after the deadline) in new/.
    assert {n.split("/")[0] for n in names} == {"cur", "new"}


def test_the_duplicate_is_byte_identical_and_the_rest_are_distinct():
    by_key = {}
    for mail, (_name, sha) in zip(
        ms.STORY,
        sorted(_files(SAMPLES / "maildir").items(), key=lambda kv: kv[0].split("/", 1)[1]),
        strict=False,
    ):
        by_key[mail.key] = sha
    dups = [m for m in ms.STORY if m.same_as]
    assert len(dups) == 1
    assert by_key[dups[0].key] == by_key[dups[0].same_as]
    others = [sha for m, sha in zip(ms.STORY, by_key.values(), strict=False) if not m.same_as]
    assert len(set(others)) == len(others)


def _raw(key: str) -> bytes:
    """The committed bytes of the STORY message named ``key``."""
    names = sorted(_files(SAMPLES / "maildir"), key=lambda n: n.split("/", 1)[1])
    index = [m.key for m in ms.STORY].index(key)
    return (SAMPLES / "maildir" / names[index]).read_bytes()


def test_the_mailbox_has_the_quirks_of_real_chinese_mail_clients():
    """The demo is only convincing if the hard cases are really in it."""
    import io
    import zipfile

    def head(raw):
        return raw.split(b"\n\n", 1)[0]

    foxmail = _raw("taiyuan-xcb")
    assert b"Subject: =?gbk?B?" in foxmail and b"filename*=GBK''%" in foxmail
    netease = _raw("datong")
    assert b"Coremail" in netease and b"filename=" not in netease and b'name="=?UTF-8?B?' in netease
    texts = [
        p.get_content()
        for p in email.message_from_bytes(netease, policy=email.policy.default).walk()
        if p.get_content_type() in ("text/plain", "text/html")
    ]
    assert len(texts) == 2 and all("https://mail.163.com/large-attachment-download/" in t for t in texts)
    outlook = _raw("sxu")
    assert b'filename="=?gb2312?B?' in outlook and b"Microsoft Outlook" in outlook
    raw8 = head(_raw("yuncheng"))
    assert "运城市科技局".encode() in raw8 and b"=?" not in raw8.split(b"Subject:", 1)[1].split(b"\n", 1)[0]
    fwd = email.message_from_bytes(_raw("sxas-forward"), policy=email.policy.default)
    assert any(p.get_content_type() == "message/rfc822" for p in fwd.walk())
    # The zip: GBK member names, no UTF-8 flag (what Windows' "send to compressed folder" makes).
    cz = email.message_from_bytes(_raw("changzhi-kjj"), policy=email.policy.default)
    data = next(p.get_payload(decode=True) for p in cz.walk() if (p.get_filename() or "").endswith(".zip"))
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    assert infos and all(not i.flag_bits & 0x800 for i in infos)
    assert [i.filename.encode("cp437").decode("gbk").rsplit("/", 1)[1] for i in infos] == [
        "2022年科技活动周开展情况统计表.xlsx",
        "长治市2022年科技活动周工作总结.docx",
        "科技活动周宣传视频.mp4",
    ]
    # The re-sent zip is the very same file (same sha256): lateness must use the first arrival.
    again = email.message_from_bytes(_raw("changzhi-kjj-again"), policy=email.policy.default)
    assert data == next(
        p.get_payload(decode=True) for p in again.walk() if (p.get_filename() or "").endswith(".zip")
    )


def test_videos_have_the_durations_the_story_needs(tmp_path, ffmpeg_available):
    """2:30 for 太原 (ok) and 3:20 for 晋中 (over the limit), measured by ffprobe."""

    def duration(key: str, suffix: str) -> float:
        msg = email.message_from_bytes(_raw(key), policy=email.policy.default)
        data = next(
            p.get_payload(decode=True) for p in msg.walk() if (p.get_filename() or "").endswith(suffix)
        )
        path = tmp_path / f"{key}{suffix}"
        path.write_bytes(data)
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        return float(json.loads(out)["format"]["duration"])

    assert duration("taiyuan-kjj", ".mp4") == pytest.approx(150, abs=0.6)
    assert duration("jinzhong", ".mp4") == pytest.approx(200, abs=0.6)
    assert duration("taiyuan-xcb", ".mov") <= 180


def test_config_points_at_the_sample_mailbox_and_roster():
    from ingest.config import load_config

    cfg = load_config(SAMPLES / "config.toml")
    assert cfg.mailbox.kind == "maildir"
    assert cfg.mailbox.path == (SAMPLES / "maildir").resolve()
    assert cfg.roster.path == (SAMPLES / "roster.csv").resolve()
    assert cfg.campaign.deadline == ms.DEADLINE
    assert cfg.links.download is False


def test_roster_units_are_those_the_story_expects():
    import csv

    with open(SAMPLES / "roster.csv", encoding="utf-8-sig", newline="") as f:
        ids = [row["id"] for row in csv.DictReader(f)]
    assert ids == list(ms.EXPECTED_STATUS)
    assert {m.unit for m in ms.STORY if m.unit} <= set(ids)


# --- the demo, end to end ---------------------------------------------------------------------


def _mailroll(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "reconcile", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cfg.parent,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory, ffmpeg_available):
    """A copy of samples/ (never the repo itself) after `mailroll ingest --once` and the staff
    decisions `make demo` runs."""
    root = tmp_path_factory.mktemp("demo") / "samples"
    shutil.copytree(SAMPLES, root, ignore=shutil.ignore_patterns("*.db*", "files"))
    cfg = root / "config.toml"
    res = _mailroll(cfg, "ingest", "--once", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    for args in ms.STAFF_DECISIONS:
        decided = _mailroll(cfg, *args)
        assert decided.returncode == 0, decided.stdout + decided.stderr
    return cfg, json.loads(res.stdout)


def test_make_demo_runs_the_samples_staff_decisions():
    import shlex

    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    for args in ms.STAFF_DECISIONS:
        assert f"demo-out/config.toml {shlex.join(args)}".replace("'", '"') in recipe, args


def test_demo_shows_an_exempt_unit_a_sheet_of_another_unit_and_a_dismissed_advert(demo):
    cfg, _ = demo
    rows = {r["id"]: r for r in json.loads(_mailroll(cfg, "status", "--json").stdout)}
    assert rows["taiyuan-kx"]["state"] == "exempt" and rows["taiyuan-kx"]["exempt"]
    sheet = rows["tyut"]["items"]["statistics"]
    assert sheet["state"] == "invalid" and sheet["sheet_unit"] == "sxu" and sheet["unit_cell"] == "山西大学"
    assert (
        sum(1 for r in rows.values() if r["state"] in ("complete", "incomplete", "missing", "exempt")) == 12
    )
    stats = json.loads(_mailroll(cfg, "stats", "--json").stdout)
    assert ("tyut", "statistics") in [(e["unit"], e["item"]) for e in stats["excluded"]]
    assert "sxu" in [u["id"] for u in stats["per_unit"]] and "tyut" not in [
        u["id"] for u in stats["per_unit"]
    ]
    open_queue = json.loads(_mailroll(cfg, "unmatched", "--json").stdout)
    assert [r["subject"] for r in open_queue] == ["咨询：科技活动周统计表模板"]
    (advert,) = json.loads(_mailroll(cfg, "unmatched", "--dismissed", "--json").stdout)
    assert advert["subject"] == "关于征订2022年下半年《科学导报》的函" and advert["note"] == "报刊征订广告"
    status_table = _mailroll(cfg, "status").stdout
    assert "12 units:" in status_table and "1 exempt" in status_table


def test_demo_ingest_counts(demo):
    _, summary = demo
    n = len(ms.STORY)
    want = {d: sum(m.disposition == d for m in ms.STORY) for d in ("unmatched", "duplicate")}
    assert summary["seen"] == n and summary["new"] == n
    assert summary["failed"] == 0
    assert summary["duplicate"] == want["duplicate"] == 1
    assert summary["unmatched"] == want["unmatched"] == 2
    assert summary["attributed"] == n - 3


def test_demo_messages_are_attributed_as_the_story_says(demo):
    cfg, _ = demo
    res = _mailroll(cfg, "messages", "--json")
    assert res.returncode == 0, res.stderr
    rows = res.stdout and json.loads(res.stdout)
    assert len(rows) == len(ms.STORY)
    for row, mail in zip(rows, ms.STORY, strict=False):
        got = datetime.fromisoformat(row["received_at"].replace("Z", "+00:00"))
        assert got == mail.arrival, (mail.key, row)
        assert row["disposition"] == mail.disposition, (mail.key, row)
        if mail.disposition != "duplicate":
            assert row["unit"] == mail.unit, (mail.key, row)
        assert row["method"] == mail.expected_method, (mail.key, row)


def test_demo_unmatched_lists_the_two_strangers_one_dismissed(demo):
    cfg, _ = demo
    res = _mailroll(cfg, "unmatched", "--all", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["subject"]: r for r in json.loads(res.stdout)}
    assert sorted(rows) == sorted(["咨询：科技活动周统计表模板", "关于征订2022年下半年《科学导报》的函"])
    assert rows["咨询：科技活动周统计表模板"]["state"] == "open"
    assert rows["关于征订2022年下半年《科学导报》的函"]["state"] == "dismissed"
    assert all(r["reason"] for r in rows.values())


def test_demo_status_tells_the_story(demo):
    cfg, _ = demo
    res = _mailroll(cfg, "status", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["id"]: r for r in json.loads(res.stdout)}
    assert list(rows) == list(ms.EXPECTED_STATUS)
    problems = []
    for uid, want in ms.EXPECTED_STATUS.items():
        got = rows[uid]
        for key in ("state", "late"):
            if got[key] != want[key]:
                problems.append(f"{uid}: {key} is {got[key]!r}, expected {want[key]!r}")
        for item, w in want["items"].items():
            g = got["items"][item]
            for key, value in w.items():
                if key == "reason~":
                    if value.lower() not in (g.get("reason") or "").lower():
                        problems.append(
                            f"{uid}.{item}: reason {g.get('reason')!r} does not mention {value!r}"
                        )
                elif g.get(key) != value:
                    problems.append(
                        f"{uid}.{item}: {key} is {g.get(key)!r}, expected {value!r} ({g.get('reason')})"
                    )
    assert not problems, "\n".join(problems)


def test_demo_video_reasons_are_plain_words(demo):
    cfg, _ = demo
    rows = {r["id"]: r for r in json.loads(_mailroll(cfg, "status", "--json").stdout)}
    assert rows["jinzhong-kjj"]["items"]["video"]["reason"] == "video lasts 3:20, over the 3:00 limit"


def test_demo_shows_a_question_an_answered_one_and_an_iphone_video(demo):
    cfg, _ = demo
    asked = json.loads(_mailroll(cfg, "questions", "--all", "--json").stdout)
    by_subject = {q["subject"]: q for q in asked}
    assert by_subject["咨询统计表填报口径"]["answered_at"] is not None, "answered by phone (make demo)"
    assert by_subject["咨询统计表填报口径"]["unit"] == "datong-kjj"
    assert [q for q in asked if q["answered_at"] is None], "and one still open"
    shown = json.loads(_mailroll(cfg, "show", "taiyuan-xcb", "--json").stdout)
    (mov,) = [p for m in shown["messages"] for p in m["parts"] if (p["filename"] or "").endswith(".mov")]
    assert "hevc" in mov["details"], "an iPhone's HEVC .MOV: the web page plays a converted copy"
