"""The PBX integration form of the settings page."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from callvault.apps.accounts.models import Team
from callvault.apps.pbx.models import AuthMode, Integration


class IntegrationForm(forms.ModelForm):
    auth_mode = forms.ChoiceField(
        label=_("認証方式"),
        choices=AuthMode.choices,
        widget=forms.RadioSelect,
        initial=AuthMode.SIGNATURE,
        help_text=_(
            "署名できる PBX・連携スクリプトは「署名」を選んでください。"
            "3CX、Yealink の電話機、Asterisk のダイヤルプランからは「トークン」を使います "
            "(HTTPS で使ってください)。"
        ),
    )
    team = forms.ModelChoiceField(
        label=_("既定のチーム"),
        queryset=Team.objects.all(),
        required=False,
        empty_label=_("なし (回線の設定だけで割り当てる)"),
        help_text=_("内線・番号が回線に登録されていない通話を、このチームに割り当てます。"),
    )

    class Meta:
        model = Integration
        fields = ["name", "auth_mode", "team", "enabled"]
        help_texts = {"enabled": _("オフにすると、この PBX からのイベントを拒否します (401)。")}
        widgets = {"name": forms.TextInput(attrs={"placeholder": _("例: 本社 FreePBX"), "maxlength": 100})}
