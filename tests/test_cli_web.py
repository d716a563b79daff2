"""`callvault web|serve --workers N` and CALLVAULT_WEB_WORKERS: bad values are clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _cli(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callvault.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_web_rejects_a_number_of_workers_out_of_range(tmp_path: Path) -> None:
    for command in ("web", "serve"):
        proc = _cli(command, "--workers", "0", data_dir=tmp_path)
        assert proc.returncode == 2
        assert "argument --workers: must be between 1 and 64, got 0" in proc.stderr
    proc = _cli("web", "--workers", "two", data_dir=tmp_path)
    assert proc.returncode == 2
    assert "argument --workers: expected a number of processes, got 'two'" in proc.stderr


def test_web_rejects_a_bad_workers_setting_with_the_variable_name(tmp_path: Path) -> None:
    proc = _cli("web", data_dir=tmp_path, CALLVAULT_WEB_WORKERS="many")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "callvault: CALLVAULT_WEB_WORKERS: expected an integer, got 'many'"
