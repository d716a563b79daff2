"""``callvault import-customers FILE.csv [--dry-run] [--team T] [--json]``.

Prints what each line does (新規 / 更新 / 変更なし / 取り込めません + why); without ``--dry-run``
applies the file in one transaction, only when no line is rejected. Exit status: 0 done (or a
clean dry run), 1 nothing imported (bad file or rejected lines), 2 usage errors.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any, TextIO

ACTION_LABELS = {"create": "新規", "update": "更新", "unchanged": "変更なし", "reject": "取り込めません"}


def _team_id(value: str | None) -> tuple[int | None, str]:
    from callvault.apps.accounts.models import Team

    if not value:
        return None, ""
    team = Team.objects.filter(name=value).first()
    if team is None and value.isdigit():
        team = Team.objects.filter(pk=int(value)).first()
    if team is None:
        names = (
            "、".join(Team.objects.order_by("name").values_list("name", flat=True)) or "(チームがありません)"
        )
        raise LookupError(f"チーム「{value}」はありません。チーム名か ID を指定してください: {names}")
    return team.pk, team.name


def run(path: str, *, dry_run: bool, team: str | None, as_json: bool, out: TextIO = sys.stdout) -> int:
    from callvault.apps.customers import csvio
    from callvault.phone import display

    err = sys.stderr
    file = Path(path)
    if not file.is_file():
        print(f"callvault import-customers: ファイルがありません: {path}", file=err)
        return 2
    try:
        team_id, team_name = _team_id(team)
    except LookupError as exc:
        print(f"callvault import-customers: {exc}", file=err)
        return 2
    size = file.stat().st_size
    if size > csvio.MAX_IMPORT_BYTES:
        print(
            f"callvault import-customers: ファイルが大きすぎます ({size / 1024 / 1024:.1f} MB、"
            f"{csvio.MAX_IMPORT_BYTES // 1024 // 1024} MB まで)。ファイルを分けてください。",
            file=err,
        )
        return 1
    data = file.read_bytes()
    try:
        plan = csvio.plan_import(data, team_id=team_id)
    except csvio.ImportRejected as exc:
        print(f"callvault import-customers: {exc.message}", file=err)
        return 1
    if as_json:
        json.dump(
            {
                "file": str(file),
                "encoding": plan.encoding,
                "team": team_name or None,
                "summary": plan.summary,
                "warnings": plan.warnings,
                "rows": [r.as_dict() for r in plan.rows],
                "dry_run": dry_run,
            },
            out,
            ensure_ascii=False,
            indent=2,
        )
        out.write("\n")
    else:
        target = team_name or "チームなし (管理者のみ閲覧)"
        encoding = csvio.ENCODING_LABELS.get(plan.encoding, plan.encoding)
        print(f"{file.name}: {encoding}、{len(plan.rows)}行、取り込み先: {target}", file=out)
        for w in plan.warnings:
            print(f"  注意: {w}", file=out)
        for r in plan.rows:
            numbers = " / ".join(display(n) for n in r.numbers) or "-"
            detail = "; ".join(r.reasons) or ("変更: " + "、".join(r.changes) if r.changes else "")
            line = f"  {r.line:>5}行目  {ACTION_LABELS[r.action]}  {r.name or '-'}  {numbers}  {detail}"
            print(line.rstrip(), file=out)
        s = plan.summary
        counts = f"新規 {s['create']}件、更新 {s['update']}件、変更なし {s['unchanged']}件"
        print(f"{counts}、取り込めない行 {s['reject']}件", file=out)
    if not plan.ok:
        print(
            "取り込めない行があるため、何も取り込みませんでした。ファイルを直してもう一度実行してください。",
            file=err,
        )
        return 1
    if dry_run:
        if not as_json:
            print("確認のみ (--dry-run): 何も変更していません。", file=out)
        return 0
    try:
        result = csvio.apply_import(
            data, team_id=team_id, user=None, filename=file.name, via="command", ip=None, username=_who()
        )
    except csvio.ImportRejected as exc:
        print(f"callvault import-customers: {exc.message}", file=err)
        return 1
    if not as_json:
        done = f"新規 {result.created}件、更新 {result.updated}件、変更なし {result.unchanged}件"
        print(f"取り込みました: {done}。", file=out)
    return 0


def _who() -> str:
    try:
        return f"{getpass.getuser()} (コマンド)"
    except Exception:
        return "(コマンド)"


def add_parser(sub: Any, add_common: Any) -> None:
    p = sub.add_parser(
        "import-customers",
        help="import customers from CSV (UTF-8 or Shift_JIS; preview with --dry-run)",
        description=(
            "Import customers from a CSV file (UTF-8 with or without BOM, Shift_JIS/CP932, UTF-16). "
            "Headers in Japanese or English "
            "(名前/氏名, フリガナ, 会社名, 電話番号/TEL, 携帯, メール, 住所 ...). "
            "Lines whose phone number belongs to a customer of the team update that customer. "
            "Nothing is imported if any line is rejected."
        ),
    )
    add_common(p)
    p.add_argument("file", help="the CSV file")
    p.add_argument("--dry-run", action="store_true", help="only show what each line would do")
    p.add_argument("--team", help="owner team (name or id); without it only admins see the customers")
    p.add_argument("--json", action="store_true", help="print the line-by-line result as JSON")
