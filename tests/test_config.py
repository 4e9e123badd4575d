"""Config and CLI basics: a wrong or missing key exits 2 naming the key and the file."""

from __future__ import annotations

import pytest

from ingest.config import ConfigError, load_config


def test_example_config_loads():
    config = load_config("config.example.toml")
    assert config.campaign.video_max_duration_s == 180
    assert config.campaign.deadline.isoformat() == "2022-06-25T23:59:59+08:00"
    assert config.mailbox.kind == "imap" and config.mailbox.password_env == "MAILROLL_IMAP_PASSWORD"
    assert [label for label, _ in config.campaign.sheet.fields][:3] == ["活动总数", "线上活动", "线下活动"]


def test_relative_paths_are_relative_to_the_config_file(campaign):
    config = campaign.config()
    assert config.storage.db == campaign.root / "mailroll.db"
    assert config.roster.path == campaign.root / "roster.csv"
    assert config.mailbox.path == campaign.root / "maildir"


@pytest.mark.parametrize(
    "section,key,value,expected",
    [
        ("campaign", "deadline", "next friday", "campaign.deadline"),
        ("campaign", "timezone", "Mars/Olympus", "campaign.timezone"),
        ("campaign.video", "max_duration_s", "three minutes", "campaign.video.max_duration_s"),
        ("mailbox", "kind", "pop3", "mailbox.kind"),
        ("reminders", "quiet_hours", "late evening", "reminders.quiet_hours"),
        ("reminders", "after_every", "2 weeks", "reminders.after_every"),
        ("smtp", "tls", "maybe", "smtp.tls"),
    ],
)
def test_bad_value_exits_2_naming_key_and_file(campaign, section, key, value, expected):
    campaign.configure(**{section.replace(".", "__"): {key: value}})
    res = campaign.run_process("messages", expect=2)
    assert expected in res.stderr
    assert str(campaign.config_path) in res.stderr


def test_missing_required_key_exits_2(campaign):
    del campaign.sections["campaign"]["name"]
    campaign.configure()
    res = campaign.run_process("messages", expect=2)
    assert "campaign.name" in res.stderr and "missing" in res.stderr


def test_missing_config_file_says_what_to_do(tmp_path):
    from fixtures.campaign import Campaign

    c = Campaign(tmp_path)
    res = c.run_process("messages", expect=2)
    assert "not found" in res.stderr and "config.example.toml" in res.stderr


def test_password_comes_only_from_the_environment(campaign, monkeypatch):
    campaign.configure(
        mailbox={
            "kind": "imap",
            "host": "127.0.0.1",
            "port": 1,
            "tls": False,
            "username": "u",
            "password_env": "MAILROLL_TEST_PW",
        }
    )
    config = campaign.config()
    monkeypatch.delenv("MAILROLL_TEST_PW", raising=False)
    with pytest.raises(ConfigError, match="MAILROLL_TEST_PW"):
        config.mailbox.password()
    monkeypatch.setenv("MAILROLL_TEST_PW", "s3cret")
    assert config.mailbox.password() == "s3cret"
    assert "s3cret" not in campaign.config_path.read_text()


@pytest.mark.parametrize(
    "section,key,expected",
    [
        ("campaign.video", "max_duration", "campaign.video.max_duration_s"),
        ("service", "pol_every_s", "service.poll_every_s"),
        ("reminders", "reciepts", "reminders.receipts"),
    ],
)
def test_misspelt_key_exits_2_with_a_guess(campaign, section, key, expected):
    campaign.configure(**{section.replace(".", "__"): {key: 1}})
    res = campaign.run_process("messages", expect=2)
    assert f"unknown key {section}.{key}" in res.stderr and f"did you mean {expected}?" in res.stderr


def test_misspelt_section_exits_2(campaign):
    campaign.configure(storge={"db": "x.db"})
    res = campaign.run_process("messages", expect=2)
    assert "unknown key storge" in res.stderr and "storage" in res.stderr


def test_imap_settings_may_stay_while_a_maildir_is_used(campaign):
    campaign.configure(
        mailbox={
            "host": "imap.126.com",
            "port": 993,
            "username": "x@126.com",
            "password_env": "MAILROLL_IMAP_PASSWORD",
        }
    )
    assert campaign.config().mailbox.kind == "maildir"
