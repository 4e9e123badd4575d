"""Shared pieces of the IMAP benchmarks: a real Dovecot, campaigns, timed runs, test files.

* ``DovecotServer`` is the test fixture's server (tests/fixtures/dovecot.py) used as a plain
  context manager.
* ``run_timed`` / ``run_mailroll`` run a command as a fresh process and return wall time and the
  process's peak RSS, measured by the kernel (``os.wait4`` rusage ``ru_maxrss`` of that child;
  tools it ran and waited for, such as ffprobe, count only if they were bigger). The wall time
  includes a few ms for the small wrapper process that collects the rusage.
* ``baseline_fetch`` is the yardstick: a minimal imapclient script that fetches every message's
  full body and writes it to disk, as a fresh process too (so both pay interpreter start-up).
* ``noise_video`` makes an MP4 of a given size with ffmpeg (random grey noise does not
  compress, so size is bitrate x duration), cached in ``~/.cache/mailroll-bench``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from fixtures.campaign import Campaign  # noqa: E402 - tests/ is put on sys.path first
from fixtures.dovecot import PASSWORD, PASSWORD_ENV, DovecotServer  # noqa: E402,F401 - re-exported for the benchmarks

CACHE = Path(os.environ.get("MAILROLL_BENCH_CACHE", Path.home() / ".cache" / "mailroll-bench"))
os.environ.setdefault(PASSWORD_ENV, PASSWORD)


@dataclass
class Run:
    seconds: float
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)


# Runs the command and reports its peak RSS. A small process of its own, because ru_maxrss
# survives exec: a child forked straight from the (big) benchmark process would report the
# benchmark's memory, not its own.
_RUSAGE_WRAPPER = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def work_dir(keep: Path | None) -> Path:
    """The benchmark's work directory: ``--keep DIR`` if given, else a fresh temp directory."""
    work = keep or Path(tempfile.mkdtemp(prefix="mailroll-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    return work


def run_timed(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> Run:
    """Run a process; wall time, and its peak RSS as the kernel measured it (wait4)."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss,
    ):
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _RUSAGE_WRAPPER, rss.name, *argv],
            stdout=out,
            stderr=err,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        kb = int(rss.read().strip() or 0)
        return Run(
            seconds,
            kb / 1024,
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


def run_mailroll(campaign: Campaign, *args: str) -> Run:
    r = run_timed([sys.executable, "-m", "reconcile", "--config", str(campaign.config_path), *args], cwd=REPO)
    if r.returncode != 0:
        raise SystemExit(f"mailroll {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


BASELINE = r"""
import sys, os
from imapclient import IMAPClient
host, port, user, password, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
c = IMAPClient(host, port, ssl=False)
c.login(user, password)
c.select_folder("INBOX", readonly=True)
uids = c.search(["ALL"])
n = 0
for i in range(0, len(uids), 20):
    for uid, data in c.fetch(uids[i:i + 20], ["BODY.PEEK[]"]).items():
        with open(os.path.join(out, str(uid)), "wb") as f:
            f.write(data[b"BODY[]"])
            f.flush()
            os.fsync(f.fileno())
        n += 1
c.logout()
print(n)
"""

BASELINE_ONE_BY_ONE = BASELINE.replace("range(0, len(uids), 20)", "range(0, len(uids), 1)").replace(
    "uids[i:i + 20]", "uids[i:i + 1]"
)

# The same script with imaplib's debug output off. IMAPClient sets imaplib's debug level to 5 (and
# routes it to a logger that drops it), so imaplib builds a repr() of every response, message
# bodies included: most of the plain script's time goes there. mailroll switches it off
# (ingest/sources/imap/connection.py, _quiet_imaplib); this variant shows what a fetch costs without it.
BASELINE_QUIET = BASELINE.replace("c.login(user, password)", "c._imap.debug = 0\nc.login(user, password)")


def baseline_fetch(
    server: DovecotServer, user: str, out_dir: Path, one_by_one: bool = False, quiet: bool = False
) -> Run:
    """Fetch every message's full body with imapclient and write it to disk (fresh process)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    script = BASELINE_ONE_BY_ONE if one_by_one else BASELINE_QUIET if quiet else BASELINE
    r = run_timed(
        [sys.executable, "-c", script, server.host, str(server.port), user, server.password, str(out_dir)]
    )
    if r.returncode != 0:
        raise SystemExit(f"baseline failed:\n{r.stderr}")
    return r


def imap_campaign(root: Path, server: DovecotServer, user: str, **mailbox) -> Campaign:
    c = Campaign.create(root)
    c.configure(mailbox=server.imap_settings(user, **mailbox))
    return c


def warm_up(server: DovecotServer, user: str) -> int:
    """Let Dovecot index the folder (after Maildir files were written directly) before timing."""
    with server.client(user) as c:
        c.select_folder("INBOX", readonly=True)
        uids = c.search(["ALL"])
        for i in range(0, len(uids), 2000):
            c.fetch(uids[i : i + 2000], ["RFC822.SIZE", "INTERNALDATE", "BODYSTRUCTURE"])
        return len(uids)


def drop_caches() -> None:
    """Flush dirty pages so one run's writes are not paid by the next run."""
    os.sync()


def _encode_noise(path: Path, seconds: float) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"nullsrc=s=640x360:r=25:d={seconds:.2f},format=gray,noise=alls=100:allf=t",
            "-c:v",
            "mpeg4",
            "-q:v",
            "5",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
        timeout=1800,
        capture_output=True,
    )


def noise_video(megabytes: int) -> Path:
    """An MP4 (MPEG-4 Part 2, 640x360 grey noise) of about ``megabytes`` MB, made once and cached.

    Noise does not compress, so the size grows with the length: a 2 s sample gives the rate."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"noise-{megabytes}mb.mp4"
    if path.exists():
        return path
    sample = CACHE / "noise-sample.mp4"
    if not sample.exists():
        _encode_noise(sample, 2.0)
    rate = sample.stat().st_size / 2.0
    tmp = path.with_suffix(".tmp.mp4")
    _encode_noise(tmp, megabytes * 1024 * 1024 / rate)
    tmp.rename(path)
    return path


def unique_copy(data: bytes, i: int) -> bytes:
    """The same media with a few different trailing bytes: a distinct file (sha256) each time,
    so neither the store nor the probe cache makes later copies free."""
    return data + f"\x00mailroll-bench-{i:08d}".encode()


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} CPUs ({cpu}){mem}, {system}, Python {platform.python_version()}"


def report(title: str, rows: list[tuple[str, str]], ratio: float | None, target: float | None) -> bool:
    print(f"\n== {title} ==")
    print(f"machine: {machine()}")
    for name, value in rows:
        print(f"  {name:<38} {value}")
    ok = True
    if ratio is not None and target is not None:
        ok = ratio <= target
        print(f"  {'ratio':<38} {ratio:.2f}x (target <= {target}x): {'OK' if ok else 'OVER TARGET'}")
    return ok
