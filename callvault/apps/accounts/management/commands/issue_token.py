"""``callvault manage issue_token USERNAME [--name NAME]``: print a new API token.

Only the token goes to stdout, so that scripts can capture it
(``TOKEN=$(callvault manage issue_token crm-bot --name CRM連携)``). Audited without the token.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from callvault.apps.accounts import services


class Command(BaseCommand):
    help = "Issue an API token for a user and print it (only the token, on stdout)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the user the token acts as")
        parser.add_argument("--name", default="", help="what the token is for (default: コマンドで発行)")

    def handle(self, *args: Any, **options: Any) -> None:
        username = str(options["username"])
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"ユーザー「{username}」は存在しません。ユーザー名を確認してください。")
        if not user.is_active:
            raise CommandError(f"ユーザー「{username}」は無効になっています。トークンは発行できません。")
        name = str(options["name"]).strip() or "コマンドで発行"
        try:
            _token, cleartext = services.issue_token(user, name, via="command")
        except services.RuleError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(cleartext)
