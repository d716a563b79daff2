"""``callvault import-customers``: the command as people run it (a real process, its own data dir)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROWS = [
    ["氏名", "フリガナ", "会社名", "TEL", "携帯電話"],
    ["髙橋 美咲", "タカハシ ミサキ", "株式会社ヤマト", "03-1111-2222", ""],
    ["井上 直樹", "", "", "", "090-3333-4444"],
]


def write_csv(path: Path, rows: list[list[str]], encoding: str = "cp932") -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def callvault(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CALLVAULT_DATA_DIR": str(data_dir)}
    for key in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"):  # its own SQLite data dir
        env.pop(key, None)
    return subprocess.run(
        [sys.executable, "-m", "callvault.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli-data")
    assert callvault(d, "manage", "migrate", "-v0").returncode == 0
    code = "from callvault.apps.accounts.models import Team; Team.objects.create(name='営業部')"
    assert callvault(d, "manage", "shell", "-c", code).returncode == 0
    return d


def count(data_dir: Path) -> int:
    code = "from callvault.apps.customers.models import Customer; print(Customer.objects.count())"
    out = callvault(data_dir, "manage", "shell", "-c", code)
    return int(out.stdout.strip().splitlines()[-1])


def test_the_command_previews_imports_and_refuses_bad_files(data_dir: Path, tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "顧客.csv", [*ROWS, ["", "", "", "03-9", ""]])
    r = callvault(data_dir, "import-customers", str(bad), "--dry-run", "--team", "営業部")
    assert r.returncode == 1
    assert "Shift_JIS (CP932)、3行、取り込み先: 営業部" in r.stdout
    assert "4行目  取り込めません  -  -  名前がありません; 電話番号が正しくありません: 03-9" in r.stdout
    assert "何も取り込みませんでした" in r.stderr
    r = callvault(data_dir, "import-customers", str(bad), "--team", "営業部")
    assert r.returncode == 1 and count(data_dir) == 0

    good = write_csv(tmp_path / "good.csv", ROWS)
    r = callvault(data_dir, "import-customers", str(good), "--dry-run", "--team", "営業部")
    assert r.returncode == 0 and "確認のみ (--dry-run)" in r.stdout and count(data_dir) == 0
    r = callvault(data_dir, "import-customers", str(good), "--team", "営業部")
    assert r.returncode == 0, r.stderr
    assert "取り込みました: 新規 2件、更新 0件、変更なし 0件。" in r.stdout
    assert count(data_dir) == 2
    r = callvault(data_dir, "import-customers", str(good), "--team", "営業部", "--dry-run", "--json")
    result = json.loads(r.stdout)
    assert result["summary"] == {"create": 0, "update": 0, "unchanged": 2, "reject": 0}
    assert result["rows"][0]["numbers"] == ["+81311112222"]

    r = callvault(data_dir, "import-customers", str(good), "--team", "経理部")
    assert r.returncode == 2 and "チーム「経理部」はありません" in r.stderr and "営業部" in r.stderr
    r = callvault(data_dir, "import-customers", str(tmp_path / "none.csv"))
    assert r.returncode == 2 and "ファイルがありません" in r.stderr
    broken = tmp_path / "broken.csv"
    broken.write_bytes("名前\r\n".encode() + "山田".encode() + b"\xff\r\n")
    r = callvault(data_dir, "import-customers", str(broken))
    assert r.returncode == 1 and "2行目に UTF-8 として正しくないバイト" in r.stderr
    assert "Traceback" not in r.stderr
