"""``callvault manage create_device NAME --team TEAM [--user USER] [--line NUMBER]``.

Prints only the device token on stdout, once (``TOKEN=$(callvault manage create_device ...)``);
it is stored as a hash and cannot be shown again. Audited without the token.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from callvault.apps.accounts.models import Line, Team
from callvault.apps.accounts.services import RuleError
from callvault.apps.uploads.devices import create_device
from callvault.phone import normalize


class Command(BaseCommand):
    help = "Create a recording device (phone app, recorder box) and print its upload token once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="what the device is, e.g. 営業部 ボイスレコーダー1")
        parser.add_argument("--team", required=True, help="the team its calls belong to (name or id)")
        parser.add_argument("--user", default="", help="the agent its calls belong to (a member of the team)")
        parser.add_argument("--line", default="", help="the line (number or extension) it records")

    def handle(self, *args: Any, **options: Any) -> None:
        team_arg = str(options["team"]).strip()
        team = Team.objects.filter(name=team_arg).first()
        if team is None and team_arg.isdigit():
            team = Team.objects.filter(pk=int(team_arg)).first()
        if team is None:
            raise CommandError(f"チーム「{team_arg}」は存在しません。チーム名を確認してください。")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"], is_active=True).first()
            if user is None:
                raise CommandError(f"有効なユーザー「{options['user']}」は存在しません。")
        line = None
        if options["line"]:
            line = (
                Line.objects.filter(number=normalize(options["line"])).first()
                or Line.objects.filter(number=options["line"]).first()
            )
            if line is None:
                raise CommandError(f"回線「{options['line']}」は登録されていません (管理 → 回線)。")
        try:
            _device, token = create_device(
                None, name=options["name"], team=team, user=user, line=line, via="command"
            )
        except RuleError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(token)
