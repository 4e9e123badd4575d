"""Shared pieces of the benchmarks: the method, a real Dovecot, campaigns, timed runs, test files.

The method, one for every benchmark (``alternate``, ``Ratio``, ``report``): the baseline and
mailroll are *contestants* run in the same benchmark run, one after the other in alternating
order (A B, B A, A B, ...) for at least 3 rounds; each is printed as the median with every
round's figure and the spread ((slowest - fastest) / median); a ratio is the ratio of the
medians, printed with the range of the per-round ratios.

* ``run_timed`` / ``run_mailroll`` run a command as a fresh process, through a small wrapper
  process that times it (the wrapper's own start-up is not counted) and measures its memory:
  the peak of the summed RSS of the whole process tree (worker processes, ffprobe), sampled
  every 10 ms from /proc, the peak of its summed PSS (shared pages counted once), every 200 ms,
  and the kernel's ``ru_maxrss`` (``os.wait4``) of the biggest single process.
* ``baseline_fetch`` is the yardstick of the IMAP benchmarks: a minimal imapclient script that
  fetches every message's full body and writes it to disk, as a fresh process too (so both pay
  interpreter start-up); "fair" has imaplib's debug output off, "stock" is imapclient as shipped.
* ``DovecotServer`` is the test fixture's server (tests/fixtures/dovecot.py) used as a plain
  context manager.
* ``noise_video`` makes an MP4 of a given size with ffmpeg (random grey noise does not
  compress, so size is bitrate x duration), cached in ``~/.cache/mailroll-bench``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    max_rss_mb: float  # the biggest single process of the tree (kernel, wait4 ru_maxrss)
    tree_rss_mb: float  # the whole tree at once: peak summed RSS (shared pages counted per process)
    tree_pss_mb: float  # the whole tree at once: peak summed PSS (shared pages counted once)
    cpu_seconds: float  # user + system CPU of the process and the descendants it waited for
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)


# Runs the command, times it and measures its memory. A small process of its own, because
# ru_maxrss survives exec: a child forked straight from the (big) benchmark process would report
# the benchmark's memory, not its own. The wall time is taken here, around the child alone, so
# the wrapper's own start-up is not counted. The tree's memory is summed over the child and all
# its descendants (worker processes, ffprobe) from /proc: RSS every 10 ms (cheap, but pages that
# forked processes share are counted in each), PSS every 200 ms (each shared page counted once,
# split between its sharers: what the tree really uses; reading it costs milliseconds, hence
# less often). The kernel's ru_maxrss (the biggest single process, exact) covers what lives
# shorter than a sample.
_RUSAGE_WRAPPER = r"""
import os, subprocess, sys, threading, time
PAGE = os.sysconf("SC_PAGE_SIZE")
def tree(pid):
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return seen
def rss(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0
def pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
peak, done = [0, 0], threading.Event()
def sample(pid):
    n = 0
    while not done.wait(0.01):
        pids = tree(pid)
        peak[0] = max(peak[0], sum(rss(p) for p in pids))
        if n % 20 == 0:
            peak[1] = max(peak[1], sum(pss(p) for p in pids))
        n += 1
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[2:])
sampler = threading.Thread(target=sample, args=(p.pid,), daemon=True)
sampler.start()
_, status, usage = os.wait4(p.pid, 0)
seconds = time.perf_counter() - t0
done.set()
sampler.join()
cpu = usage.ru_utime + usage.ru_stime
open(sys.argv[1], "w").write(f"{usage.ru_maxrss} {peak[0] // 1024} {peak[1] // 1024} {seconds!r} {cpu!r}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def work_dir(keep: Path | None) -> Path:
    """The benchmark's work directory: ``--keep DIR`` if given, else a fresh temp directory."""
    work = keep or Path(tempfile.mkdtemp(prefix="mailroll-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    return work


@contextmanager
def bench_dir(keep: Path | None) -> Iterator[Path]:
    """The work directory (``work_dir``), removed afterwards unless ``--keep`` named it."""
    work = work_dir(keep)
    try:
        yield work
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def run_timed(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> Run:
    """Run a process: its wall time, and its memory as the kernel and /proc report it."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as measured,
    ):
        proc = subprocess.run(
            [sys.executable, "-c", _RUSAGE_WRAPPER, measured.name, *argv],
            stdout=out,
            stderr=err,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        out.seek(0)
        err.seek(0)
        fields = measured.read().split()
        max_kb, rss_kb, pss_kb = (int(f) for f in fields[:3]) if fields else (0, 0, 0)
        seconds, cpu = (float(fields[3]), float(fields[4])) if fields else (0.0, 0.0)
        return Run(
            seconds,
            max_kb / 1024,
            max(max_kb, rss_kb) / 1024,
            max(max_kb, pss_kb) / 1024,
            cpu,
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


# ---- the method every benchmark uses: contestants alternate, rounds, medians, spread ----------


@dataclass
class Contestant:
    """One side of a comparison. ``run(round)`` prepares what it needs (untimed), runs the timed
    process and returns its Run; ``after(round)`` tidies up (untimed), e.g. deletes written files."""

    name: str
    run: Callable[[int], Run]
    after: Callable[[int], None] | None = None


@dataclass
class Series:
    name: str
    runs: list[Run]

    @property
    def seconds(self) -> list[float]:
        return [r.seconds for r in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median else 0.0

    @property
    def peak_tree_mb(self) -> float:
        """Peak summed RSS of the process tree, worst round."""
        return max(r.tree_rss_mb for r in self.runs)

    @property
    def peak_tree_pss_mb(self) -> float:
        """Peak summed PSS of the process tree, worst round."""
        return max(r.tree_pss_mb for r in self.runs)

    def line(self, unit: str = "s") -> str:
        scale, fmt = (1000.0, "{:.1f}") if unit == "ms" else (1.0, "{:.2f}")
        each = ", ".join(fmt.format(t * scale) for t in self.seconds)
        text = f"median {fmt.format(self.median * scale)} {unit} [{each}], spread {self.spread:.0%}"
        if any(r.tree_rss_mb for r in self.runs):  # (a process of its own, measured)
            cpu = statistics.median(r.cpu_seconds for r in self.runs) * scale
            text += (
                f", CPU (median) {cpu:.1f} {unit}, "
                f"peak RSS {self.peak_tree_mb:.0f} MB (PSS {self.peak_tree_pss_mb:.0f} MB)"
            )
        return text


def alternate(contestants: list[Contestant], rounds: int, quiet: bool = False) -> dict[str, Series]:
    """Run every contestant once per round, alternating the order (A B, then B A, ...) so drift
    in the machine's load and warm caches favour nobody. Dirty pages are flushed before every
    timed run (one run's writes are not paid by the next)."""
    runs: dict[str, list[Run]] = {c.name: [] for c in contestants}
    for r in range(rounds):
        order = contestants if r % 2 == 0 else contestants[::-1]
        for c in order:
            drop_caches()
            run = c.run(r)
            runs[c.name].append(run)
            if not quiet:
                print(f"  round {r + 1}/{rounds}: {c.name}: {run.seconds:.3f} s", flush=True)
            if c.after is not None:
                c.after(r)
    return {name: Series(name, rs) for name, rs in runs.items()}


@dataclass
class Ratio:
    """numerator / denominator, of their medians; per round too (the spread of the ratio)."""

    label: str
    numerator: Series
    denominator: Series
    target: float | None = None

    @property
    def value(self) -> float:
        return self.numerator.median / self.denominator.median

    @property
    def per_round(self) -> list[float]:
        return [a / b for a, b in zip(self.numerator.seconds, self.denominator.seconds, strict=True)]

    @property
    def ok(self) -> bool:
        return self.target is None or self.value <= self.target

    def line(self) -> str:
        each = self.per_round
        verdict = (
            f" (target <= {self.target}x): {'OK' if self.ok else 'OVER TARGET'}"
            if self.target is not None
            else " (for information)"
        )
        return (
            f"{self.value:.2f}x of the medians; per round {min(each):.2f}x-{max(each):.2f}x "
            f"over {len(each)} rounds{verdict}"
        )


def report(
    title: str,
    info: list[tuple[str, str]],
    series: list[Series],
    ratios: list[Ratio],
    unit: str = "s",
) -> bool:
    """Print the comparison; True when every ratio with a target is within it."""
    print(f"\n== {title} ==")
    print(f"machine: {machine()}")
    for name, value in info:
        print(f"  {name:<40} {value}")
    for s in series:
        print(f"  {s.name:<40} {s.line(unit)}")
    for r in ratios:
        print(f"  {r.label:<40} {r.line()}")
    return all(r.ok for r in ratios)


def add_common_args(ap) -> None:
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds (at least 3)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not the figures")
    ap.add_argument("--keep", type=Path, help="keep the work directory here")


def mailroll_argv(campaign: Campaign, *args: str) -> list[str]:
    return [sys.executable, "-m", "reconcile", "--config", str(campaign.config_path), *args]


def run_mailroll(campaign: Campaign, *args: str) -> Run:
    r = run_timed(mailroll_argv(campaign, *args), cwd=REPO)
    if r.returncode != 0:
        raise SystemExit(f"mailroll {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


# The yardsticks of the IMAP benchmarks: a fresh Python process that fetches every message's
# full body with imapclient (imaplib's debug output off, as any careful client and mailroll have
# it) and writes each to its own file. Flavours (``Fetch``), all printed, the first the target's
# denominator:
# * "per message": one FETCH per message, no fsync per message (a careful client that must not
#   lose mail batches its fsyncs: one sync of the file system at the end);
# * "batched": 100 messages per FETCH, the same writes: what a bulk downloader does;
# * "fsync each" (labelled, for the older figures): 20 per FETCH and an fsync after every file.
BASELINE = r"""
import os, sys
from imapclient import IMAPClient
host, port, user, password, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
batch, fsync_each = int(sys.argv[6]), sys.argv[7] == "each"
c = IMAPClient(host, port, ssl=False)
c._imap.debug = 0
c.login(user, password)
c.select_folder("INBOX", readonly=True)
uids = c.search(["ALL"])
n = 0
for i in range(0, len(uids), batch):
    for uid, data in c.fetch(uids[i:i + batch], ["BODY.PEEK[]"]).items():
        with open(os.path.join(out, str(uid)), "wb") as f:
            f.write(data[b"BODY[]"])
            if fsync_each:
                f.flush()
                os.fsync(f.fileno())
        n += 1
c.logout()
if not fsync_each:
    os.sync()  # the batch's one sync: everything written is on disk when the client says so
print(n)
"""


@dataclass(frozen=True)
class Fetch:
    """A baseline's way of fetching: messages per FETCH, fsync after each file or once at the end."""

    label: str
    batch: int
    fsync_each: bool = False


PER_MESSAGE = Fetch("baseline: one FETCH per message", 1)
BATCHED = Fetch("baseline: 100 per FETCH", 100)
FSYNC_EACH = Fetch("baseline: 20 per FETCH + fsync each (older figures)", 20, True)


def baseline_fetch(server: DovecotServer, user: str, out_dir: Path, how: Fetch = PER_MESSAGE) -> Run:
    """Fetch every message's full body with imapclient and write it to disk (a fresh process)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [server.host, str(server.port), user, server.password, str(out_dir), str(how.batch)]
    r = run_timed([sys.executable, "-c", BASELINE, *args, "each" if how.fsync_each else "end"])
    if r.returncode != 0:
        raise SystemExit(f"baseline failed:\n{r.stderr}")
    return r


def baseline_contestant(
    server: DovecotServer, user: str, out_dir: Path, expect: int, how: Fetch
) -> Contestant:
    """A baseline fetch as a contestant: a fresh, empty output directory each round."""

    def run(_round: int) -> Run:
        r = baseline_fetch(server, user, out_dir, how)
        if int(r.stdout) != expect:
            raise SystemExit(f"{how.label}: fetched {r.stdout.strip()} messages, expected {expect}")
        return r

    return Contestant(how.label, run, after=lambda _round: shutil.rmtree(out_dir, ignore_errors=True))


def baselines(server: DovecotServer, user: str, work: Path, expect: int) -> list[Contestant]:
    """The three baselines (``PER_MESSAGE`` first: the targets' denominator)."""
    return [
        baseline_contestant(server, user, work / f"baseline-{i}", expect, how)
        for i, how in enumerate((PER_MESSAGE, BATCHED, FSYNC_EACH))
    ]


def baseline_ratios(mailroll: Series, found: dict[str, Series], target: float) -> list[Ratio]:
    """mailroll against each baseline; the target holds against the per-message fetch."""
    return [
        Ratio(
            f"mailroll / {how.label.removeprefix('baseline: ')}",
            mailroll,
            found[how.label],
            target if i == 0 else None,
        )
        for i, how in enumerate((PER_MESSAGE, BATCHED, FSYNC_EACH))
    ]


def ingest_contestant(
    name: str, root: Path, server: DovecotServer, user: str, check: Callable[[Campaign, Run], None]
) -> Contestant:
    """`mailroll ingest --once --json` on a fresh campaign (database, store) each round;
    ``check(campaign, run)`` verifies the result (raise to stop the benchmark)."""
    campaigns: dict[int, Campaign] = {}

    def run(r: int) -> Run:
        campaign = campaigns[r] = imap_campaign(root / f"round{r + 1}", server, user)
        result = run_mailroll(campaign, "ingest", "--once", "--json")
        check(campaign, result)
        return result

    return Contestant(name, run, after=lambda r: shutil.rmtree(campaigns[r].root, ignore_errors=True))


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
    cpus = len(os.sched_getaffinity(0))  # what `nproc` prints
    return (
        f"nproc {cpus} ({cpu}){mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
