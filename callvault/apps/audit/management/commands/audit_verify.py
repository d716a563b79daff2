"""``callvault manage audit_verify``: check the audit log's hash chain; exit code 1 when broken."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from callvault.apps.audit.models import verify_chain
from callvault.apps.audit.views import describe_problem


class Command(BaseCommand):
    help = "Verify the audit log's hash chain; prints the result, exits with 1 when it is broken."

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_chain()
        if report.ok:
            self.stdout.write(f"監査ログ: OK ({report.entries} 件を検証し、改ざんは見つかりませんでした)")
            return
        self.stdout.write(
            f"監査ログ: 問題があります ({report.entries} 件を検証し、{len(report.problems)} 件の問題)"
        )
        for problem in report.problems:
            self.stdout.write(f"- {describe_problem(problem)}  [{problem}]")
        raise CommandError("監査ログのハッシュチェーンが壊れています。", returncode=1)
