"""Settings from the environment, Japanese phone numbers, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from callvault.config import ConfigError, env_bool, env_int, env_str, parse_port_range
from callvault.phone import display, normalize
from callvault.siprec.session import guess_direction


@pytest.mark.parametrize(
    ("raw", "stored", "shown"),
    [
        ("03-1234-5678", "+81312345678", "03-1234-5678"),
        ("0312345678", "+81312345678", "03-1234-5678"),
        ("+81312345678", "+81312345678", "03-1234-5678"),
        ("090-1234-5678", "+819012345678", "090-1234-5678"),
        ("0120-123-456", "+81120123456", "0120-123-456"),
        ("201", "201", "201"),
        ("anonymous", "anonymous", "非通知"),
        ("Anonymous", "anonymous", "非通知"),
        ("非通知", "anonymous", "非通知"),
        ("公衆電話", "payphone", "公衆電話"),
        ("+14155550100", "+14155550100", "+1 415-555-0100"),
        ("", "", ""),
    ],
)
def test_numbers_are_stored_e164_and_shown_as_japanese_users_write_them(
    raw: str, stored: str, shown: str
) -> None:
    assert normalize(raw) == stored
    assert display(stored) == shown


@pytest.mark.parametrize(
    ("caller", "callee", "direction"),
    [
        ("+81312345678", "201", "in"),
        ("201", "+819012345678", "out"),
        ("201", "202", "internal"),
        ("", "", "unknown"),
    ],
)
def test_direction_is_seen_from_the_company(caller: str, callee: str, direction: str) -> None:
    assert guess_direction(caller, callee) == direction


def test_bad_settings_fail_loudly_with_the_variable_name(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("CV_TEST_INT", "many")
    with pytest.raises(ConfigError, match="CV_TEST_INT: expected an integer, got 'many'"):
        env_int("CV_TEST_INT", 1)
    monkeypatch.setenv("CV_TEST_INT", "0")
    with pytest.raises(ConfigError, match="CV_TEST_INT: must be at least 5, got 0"):
        env_int("CV_TEST_INT", 10, minimum=5)
    monkeypatch.setenv("CV_TEST_BOOL", "perhaps")
    with pytest.raises(ConfigError, match="CV_TEST_BOOL: expected a boolean"):
        env_bool("CV_TEST_BOOL")
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("CV_TEST_SECRET_FILE", str(secret))
    assert env_str("CV_TEST_SECRET") == "s3cret"
    monkeypatch.setenv("CV_TEST_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="CV_TEST_SECRET_FILE: cannot read"):
        env_str("CV_TEST_SECRET")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("20000", "expected LOW-HIGH"),
        ("30000-20000", "1024 <= LOW <= HIGH"),
        ("80-90", "1024 <= LOW"),
        ("20000-20000", "fewer than two ports"),
    ],
)
def test_port_ranges_are_checked(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_port_range(text, "--rtp-ports")
    assert parse_port_range("20000-29999") == (20000, 29999)


def _cli(*args: str, data_dir) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callvault.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_rejects_a_bad_port_range_with_a_clear_message(tmp_path) -> None:
    proc = _cli("recorder", "--rtp-ports", "9-5", data_dir=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "callvault: --rtp-ports: expected 1024 <= LOW <= HIGH <= 65535, got '9-5'"


def test_cli_lists_calls_as_json_and_says_so_when_there_are_none(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "callvault.cli", "manage", "--data-dir", str(tmp_path), "migrate", "-v", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    proc = _cli("calls", "--json", data_dir=tmp_path)
    assert proc.returncode == 0 and json.loads(proc.stdout) == []
    assert _cli("calls", data_dir=tmp_path).stdout.strip() == "通話はまだありません。"
