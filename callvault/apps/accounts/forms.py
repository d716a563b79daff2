"""Forms of the administration pages and of "my account": bounded inputs, Japanese messages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from callvault.apps.accounts.models import Line, Membership, Team, TeamRole, UserRole
from callvault.phone import PAYPHONE, WITHHELD, display, normalize

extension_validator = RegexValidator(
    r"^[0-9*#]{1,16}$", _("内線番号は半角数字(と * #)16桁までで入力してください。")
)


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        profile = getattr(obj, "profile", None)
        name = profile.display_name if profile and profile.display_name else ""
        return f"{name} ({obj.get_username()})" if name else obj.get_username()


def users_for_choice() -> Any:
    return get_user_model().objects.filter(is_active=True).select_related("profile").order_by("username")


class UserFieldsMixin(forms.Form):
    display_name = forms.CharField(
        label=_("表示名"),
        max_length=100,
        required=False,
        help_text=_("画面や通話一覧に表示される名前 (例: 山田 花子)"),
    )
    extension = forms.CharField(
        label=_("内線番号"),
        max_length=16,
        required=False,
        validators=[extension_validator],
        help_text=_("通話を担当者に割り当てるには、回線の画面でこの内線を登録してください。"),
    )
    role = forms.ChoiceField(
        label=_("権限"),
        choices=UserRole.choices,
        initial=UserRole.MEMBER,
        help_text=_(
            "管理者: すべての通話と設定を管理。メンバー: 所属チームの通話を閲覧。"
            "監査担当: 監査ログのみ閲覧 (通話は見られません)。"
        ),
    )
    is_active = forms.BooleanField(
        label=_("有効"),
        required=False,
        initial=True,
        help_text=_("無効にするとログインできなくなり、APIトークンもすべて無効になります。"),
    )

    def clean_display_name(self) -> str:
        return str(self.cleaned_data["display_name"]).strip()

    def clean_extension(self) -> str:
        return str(self.cleaned_data["extension"]).strip()


class UserCreateForm(UserFieldsMixin):
    username = forms.CharField(
        label=_("ユーザー名"),
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text=_("ログインに使います。英数字と @ . + - _ が使えます (例: yamada)"),
    )
    team = forms.ModelChoiceField(
        label=_("チーム"), queryset=Team.objects.all(), required=False, empty_label=_("(あとで設定)")
    )
    team_role = forms.ChoiceField(
        label=_("チームでの役割"), choices=TeamRole.choices, initial=TeamRole.AGENT, required=False
    )

    field_order = ["username", "display_name", "extension", "role", "is_active", "team", "team_role"]

    def clean_username(self) -> str:
        username = str(self.cleaned_data["username"]).strip()
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(_("このユーザー名はすでに使われています。"))
        return username


class UserEditForm(UserFieldsMixin):
    pass


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name", "share_calls"]
        labels = {"name": _("チーム名"), "share_calls": _("チーム内で通話を共有する")}
        help_texts = {
            "share_calls": _(
                "オン: このチームの担当者は、チーム全員の通話を一覧・再生できます。"
                "オフ: 担当者は自分が担当した通話 (自分の回線の通話) だけを見られます。"
                "スーパーバイザーはどちらの場合もチームのすべての通話を見られます。"
            )
        }
        error_messages = {"name": {"unique": _("同じ名前のチームがすでにあります。")}}

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if not name:
            raise forms.ValidationError(_("チーム名を入力してください。"))
        return name


class MembershipAddForm(forms.Form):
    user = UserChoiceField(
        label=_("ユーザー"), queryset=get_user_model().objects.none(), empty_label=_("ユーザーを選択")
    )
    role = forms.ChoiceField(label=_("役割"), choices=TeamRole.choices, initial=TeamRole.AGENT)

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        members = Membership.objects.filter(team=team).values("user_id")
        self.fields["user"].queryset = users_for_choice().exclude(pk__in=members)


class MembershipRoleForm(forms.Form):
    role = forms.ChoiceField(label=_("役割"), choices=TeamRole.choices)


class LineForm(forms.Form):
    number = forms.CharField(
        label=_("電話番号・内線"),
        max_length=40,
        help_text=_("外線は 03-1234-5678 のように、内線は 201 のように入力します。"),
    )
    label = forms.CharField(
        label=_("名前"), max_length=100, required=False, help_text=_("例: 代表番号、営業 山本")
    )
    team = forms.ModelChoiceField(label=_("チーム"), queryset=Team.objects.all(), empty_label=None)
    user = UserChoiceField(
        label=_("担当者"),
        queryset=get_user_model().objects.none(),
        required=False,
        empty_label=_("(チームのみ)"),
        help_text=_("個人の内線・直通番号なら担当者を選びます。代表番号などはチームのみにします。"),
    )

    def __init__(self, *args: Any, instance: Line | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "number": display(instance.number),
                "label": instance.label,
                "team": instance.team_id,
                "user": instance.user_id,
            }
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = users_for_choice()
        if not Team.objects.exists():
            self.fields["team"].help_text = _("先にチームを作成してください。")

    def clean_number(self) -> str:
        raw = str(self.cleaned_data["number"]).strip()
        number = normalize(raw)
        if number in (WITHHELD, PAYPHONE):
            raise forms.ValidationError(_("非通知や公衆電話は回線として登録できません。"))
        if not number or not any(ch.isdigit() for ch in number):
            raise forms.ValidationError(_("電話番号または内線番号を数字で入力してください。"))
        existing = Line.objects.filter(number=number)
        if self.instance is not None:
            existing = existing.exclude(pk=self.instance.pk)
        other = existing.select_related("team").first()
        if other is not None:
            raise forms.ValidationError(
                _("この番号 (%(number)s) はすでに回線「%(line)s」(%(team)s) として登録されています。"),
                params={
                    "number": display(number),
                    "line": other.label or display(number),
                    "team": other.team,
                },
            )
        return number

    def clean_label(self) -> str:
        return str(self.cleaned_data["label"]).strip()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        team, user = data.get("team"), data.get("user")
        if (
            team is not None
            and user is not None
            and not Membership.objects.filter(team=team, user=user).exists()
        ):
            self.add_error(
                "user",
                _("%(user)s はチーム「%(team)s」のメンバーではありません。先にチームに追加してください。")
                % {"user": user.get_username(), "team": team.name},
            )
        return data


class TokenCreateForm(forms.Form):
    name = forms.CharField(
        label=_("トークンの名前"),
        max_length=100,
        help_text=_("用途がわかる名前にします (例: CRM連携、夜間バックアップ)"),
        error_messages={
            "required": _("名前を入力してください。"),
            "max_length": _("名前は100文字以内で入力してください。"),
        },
    )

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if not name:
            raise forms.ValidationError(_("名前を入力してください。"))
        return name
