"""Forms of the customer pages. Validation that the API and CSV share lives in ``services``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from callvault.apps.accounts.models import Team
from callvault.apps.customers.models import CustomerKind, CustomField, FieldType, ListKind, PhoneLabel
from callvault.apps.customers.services import CustomerInput, PhoneInput, clean_tag_names

MAX_PHONE_ROWS = 20


def team_queryset(team_ids: list[int] | None) -> Any:
    qs = Team.objects.order_by("name")
    return qs if team_ids is None else qs.filter(pk__in=team_ids)


class CustomerForm(forms.Form):
    kind = forms.ChoiceField(label=_("種別"), choices=CustomerKind.choices, initial=CustomerKind.PERSON)
    name = forms.CharField(label=_("名前"), max_length=200, help_text=_("個人名、または法人の場合は会社名"))
    kana = forms.CharField(
        label=_("フリガナ"), max_length=200, required=False, help_text=_("並べ替えと検索に使います")
    )
    company = forms.CharField(label=_("会社名"), max_length=200, required=False)
    department = forms.CharField(label=_("部署"), max_length=200, required=False)
    email = forms.CharField(
        label=_("メールアドレス"), max_length=254, required=False, widget=forms.EmailInput()
    )
    postal_code = forms.CharField(label=_("郵便番号"), max_length=10, required=False)
    address = forms.CharField(label=_("住所"), max_length=300, required=False)
    memo = forms.CharField(
        label=_("備考"), max_length=4000, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    tags = forms.CharField(
        label=_("タグ"),
        max_length=1000,
        required=False,
        help_text=_("読点 (、) かカンマで区切ります。例: VIP、クレーム注意"),
    )
    owner_team = forms.ModelChoiceField(label=_("担当チーム"), queryset=Team.objects.none(), required=False)

    def __init__(
        self,
        *args: Any,
        team_ids: list[int] | None,
        custom_fields: list[CustomField],
        team_required: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        team_field = self.fields["owner_team"]
        assert isinstance(team_field, forms.ModelChoiceField)
        team_field.queryset = team_queryset(team_ids)
        team_field.required = team_required
        team_field.empty_label = _("なし (管理者のみ閲覧)") if not team_required else None
        self.custom_fields = custom_fields
        for f in custom_fields:
            self.fields[f"custom_{f.key}"] = _custom_form_field(f)
        for name, field in self.fields.items():
            if isinstance(field.widget, forms.TextInput | forms.EmailInput | forms.Textarea):
                field.widget.attrs.setdefault("autocomplete", "off")
            if name == "kana":
                field.widget.attrs["placeholder"] = "ヤマダ タロウ"
            if name == "postal_code":
                field.widget.attrs.update({"placeholder": "100-0001", "inputmode": "numeric"})

    @property
    def custom_bound_fields(self) -> list[Any]:
        return [self[f"custom_{f.key}"] for f in self.custom_fields]

    def to_input(self, phones: list[PhoneInput]) -> CustomerInput:
        data = {k: self.cleaned_data.get(k, "") for k in self.fields if not k.startswith("custom_")}
        custom = {}
        for f in self.custom_fields:
            value = self.cleaned_data.get(f"custom_{f.key}")
            if f.field_type == FieldType.BOOLEAN:
                value = {"yes": True, "no": False}.get(str(value or ""))
            if value not in (None, ""):
                custom[f.key] = value.isoformat() if hasattr(value, "isoformat") else value
        team = self.cleaned_data.get("owner_team")
        return CustomerInput(
            data=data,
            phones=phones,
            tags=clean_tag_names(_split_tags(self.cleaned_data.get("tags", ""))),
            custom=custom,
            owner_team_id=team.pk if team is not None else None,
        )


def _split_tags(text: str) -> list[str]:
    import re

    return [t for t in re.split(r"\s*[,，、;；]\s*", text or "") if t.strip()]


def _custom_form_field(f: CustomField) -> forms.Field:
    common: dict[str, Any] = {"label": f.label, "required": f.required}
    if f.field_type == FieldType.NUMBER:
        return forms.CharField(
            max_length=40, widget=forms.TextInput(attrs={"inputmode": "decimal"}), **common
        )
    if f.field_type == FieldType.DATE:
        return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
    if f.field_type == FieldType.BOOLEAN:
        return forms.ChoiceField(choices=[("", "—"), ("yes", _("はい")), ("no", _("いいえ"))], **common)
    if f.field_type == FieldType.CHOICE:
        return forms.ChoiceField(choices=[("", "—")] + [(c, c) for c in f.choices or []], **common)
    return forms.CharField(max_length=1000, **common)


def initial_for(customer: Any, custom_fields: list[CustomField]) -> dict[str, Any]:
    initial: dict[str, Any] = {
        k: getattr(customer, k)
        for k in ("kind", "name", "kana", "company", "department", "email", "postal_code", "address", "memo")
    }
    initial["tags"] = "、".join(customer.tags.values_list("name", flat=True))
    initial["owner_team"] = customer.owner_team_id
    for f in custom_fields:
        value = (customer.custom or {}).get(f.key)
        if f.field_type == FieldType.BOOLEAN and value is not None:
            value = "yes" if value else "no"
        initial[f"custom_{f.key}"] = value
    return initial


def phones_from_post(data: Any) -> list[PhoneInput]:
    numbers = data.getlist("phone_number")[:MAX_PHONE_ROWS]
    labels = data.getlist("phone_label")[:MAX_PHONE_ROWS]
    out = []
    for i, number in enumerate(numbers):
        label = labels[i] if i < len(labels) else PhoneLabel.WORK
        if str(number).strip():
            out.append(PhoneInput(str(number)[:40], str(label)))
    return out


class NumberListForm(forms.Form):
    pattern = forms.CharField(
        label=_("番号"),
        max_length=40,
        help_text=_("03-1234-5678、前方一致は 0120* のように * を付けます。非通知・公衆電話も指定できます。"),
    )
    kind = forms.ChoiceField(label=_("種類"), choices=ListKind.choices, initial=ListKind.NUISANCE)
    reason = forms.CharField(label=_("理由"), max_length=300, required=False)
    team = forms.ModelChoiceField(label=_("対象"), queryset=Team.objects.none(), required=False)

    def __init__(self, *args: Any, team_ids: list[int] | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        team_field = self.fields["team"]
        assert isinstance(team_field, forms.ModelChoiceField)
        team_field.queryset = team_queryset(team_ids)
        team_field.required = team_ids is not None  # only admins add organisation-wide entries
        team_field.empty_label = _("組織全体") if team_ids is None else None


class CustomFieldForm(forms.Form):
    label = forms.CharField(label=_("項目名"), max_length=100)
    key = forms.SlugField(
        label=_("キー"), max_length=50, help_text=_("半角英数字と _ (CSV と API で使います)。例: contract_no")
    )
    field_type = forms.ChoiceField(label=_("種類"), choices=FieldType.choices)
    choices = forms.CharField(
        label=_("選択肢"),
        max_length=1000,
        required=False,
        help_text=_("種類が「選択肢」のとき、読点かカンマで区切ります"),
    )
    required = forms.BooleanField(label=_("必須"), required=False)

    def clean_key(self) -> str:
        key = str(self.cleaned_data["key"])
        if CustomField.objects.filter(key=key).exists():
            raise forms.ValidationError(_("このキーはすでに使われています"))
        return key

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("field_type") == FieldType.CHOICE and not _split_tags(data.get("choices", "")):
            self.add_error("choices", _("選択肢を入力してください"))
        if data.get("label") and CustomField.objects.filter(label=data["label"]).exists():
            self.add_error("label", _("同じ項目名がすでにあります"))
        return data

    def choice_list(self) -> list[str]:
        return _split_tags(self.cleaned_data.get("choices", ""))


class ImportForm(forms.Form):
    file = forms.FileField(label=_("CSV ファイル"))
    team = forms.ModelChoiceField(label=_("取り込み先のチーム"), queryset=Team.objects.none(), required=False)

    def __init__(self, *args: Any, team_ids: list[int] | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        team_field = self.fields["team"]
        assert isinstance(team_field, forms.ModelChoiceField)
        team_field.queryset = team_queryset(team_ids)
        team_field.required = team_ids is not None
        team_field.empty_label = _("なし (管理者のみ閲覧)") if team_ids is None else None
        self.fields["file"].widget.attrs["accept"] = ".csv,.txt,.tsv,text/csv"
