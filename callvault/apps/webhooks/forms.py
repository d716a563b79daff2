"""The webhook form of the settings page."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from callvault.apps.accounts.models import Team
from callvault.apps.webhooks import transport
from callvault.apps.webhooks.models import Event, Webhook


class WebhookForm(forms.ModelForm):
    url = forms.URLField(
        label=_("送信先 URL"),
        max_length=500,
        assume_scheme="https",
        help_text=_(
            "https:// を推奨します。"
            "リンクローカル (169.254.x.x) やクラウドのメタデータアドレスには送信できません。"
        ),
        widget=forms.URLInput(attrs={"placeholder": "https://crm.example.co.jp/hooks/callvault"}),
    )
    events = forms.MultipleChoiceField(
        label=_("送信するイベント"),
        choices=Event.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Event.CALL_COMPLETED],
        error_messages={"required": _("イベントを 1 つ以上選んでください。")},
    )
    team = forms.ModelChoiceField(
        label=_("対象のチーム"),
        queryset=Team.objects.all(),
        required=False,
        empty_label=_("すべてのチーム"),
        help_text=_("チームを選ぶと、そのチームの通話だけを送ります。"),
    )

    class Meta:
        model = Webhook
        fields = ["name", "url", "events", "team", "active"]
        help_texts = {
            "active": _("オフにすると送信を止めます (設定と履歴は残ります)。"),
        }
        widgets = {
            "name": forms.TextInput(attrs={"placeholder": _("例: CRM 連携"), "maxlength": 100}),
        }

    def clean_url(self) -> str:
        url = str(self.cleaned_data["url"]).strip()
        try:
            _scheme, host, port, _path = transport.check_url(url)
            transport.resolve(host, port)
        except transport.UnsafeDestination as exc:
            raise forms.ValidationError(
                _("この URL には送信できません: %(reason)s") % {"reason": exc}
            ) from None
        except transport.DestinationError:
            pass  # not resolvable from here right now; every delivery checks again
        return url
