"""Shared fixtures: a campaign directory with config and roster, and helpers to build mail.

Service fixtures live in tests/fixtures/: dovecot.py (real Dovecot IMAP), smtp.py (aiosmtpd),
files.py (real xlsx/docx/pdf/video files), mail.py (messages as Chinese mail clients send them).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(Path(__file__).resolve().parent))
# every process a test starts (the CLI, `serve`, `web`, the workers) prints its Python stacks if
# it dies of a fault in a C library; pytest's own faulthandler covers the test processes
os.environ.setdefault("PYTHONFAULTHANDLER", "1")

pytest_plugins = [
    "fixtures.dovecot",
    "fixtures.smtp",
    "fixtures.files",
]

from fixtures.campaign import Campaign  # noqa: E402 - after the fixture plugins are listed


@pytest.fixture
def campaign(tmp_path: Path) -> Campaign:
    """A campaign directory with the sample roster and a Maildir mailbox (empty)."""
    return Campaign.create(tmp_path)


@pytest.fixture
def mailing(campaign: Campaign, smtp_server) -> tuple[Campaign, object]:
    """A campaign that sends through the test SMTP server: (campaign, smtp_server)."""
    campaign.configure(smtp=smtp_server.config())
    return campaign, smtp_server


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    for candidate in (SHARED / "corpus", REPO / "shared" / "corpus"):
        if candidate.is_dir():
            return candidate
    pytest.skip("../shared/corpus is not present")


@pytest.fixture(scope="session")
def ffmpeg_available() -> bool:
    if not shutil.which("ffmpeg") or not shutil.which("ffprobe"):
        pytest.fail("ffmpeg/ffprobe are not installed: run `make test`, which installs them")
    return True
