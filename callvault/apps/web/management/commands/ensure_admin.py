"""Create the first administrator if there is none, and say how to log in."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from callvault.config import env_str


class Command(BaseCommand):
    help = "Create the first admin user (password from CALLVAULT_ADMIN_PASSWORD or generated)."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("管理者アカウントは作成済みです。")
            return
        username = env_str("CALLVAULT_ADMIN_USER", "admin")
        password = env_str("CALLVAULT_ADMIN_PASSWORD")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(f"管理者アカウントを作成しました: ユーザー名 {username}")
        if generated:
            path = settings.DATA_DIR / "initial-admin-password.txt"
            path.write_text(password + "\n", encoding="utf-8")
            path.chmod(0o600)
            # Shown once on the operator's terminal; never written to a log.
            self.stdout.write(f"初期パスワード: {password}")
            self.stdout.write(f"(同じ内容を {path} に保存しました。ログイン後に変更してください)")
