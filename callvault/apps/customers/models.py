"""Customers (顧客カルテ): people and companies, their phone numbers, notes, tags and custom fields,
and the nuisance/caution number lists (迷惑電話 / 要注意).

Numbers are stored as E.164 (``callvault.phone.normalize``) and looked up through an index on
``CustomerPhone.number``; text search runs over ``Customer.search_text``, an NFKC-folded copy of
the searchable fields (see :func:`callvault.apps.customers.text.fold`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class CustomerKind(models.TextChoices):
    PERSON = "person", _("個人")
    COMPANY = "company", _("法人")


class CustomerTag(models.Model):
    """A label on customers; ``warning`` tags (クレーム注意 ...) show as warnings in the caller card."""

    name = models.CharField(_("タグ"), max_length=50, unique=True)
    warning = models.BooleanField(_("警告として表示"), default=False)
    color = models.CharField(max_length=7, default="#6b7280", help_text="#rrggbb")

    class Meta:
        ordering = ["name"]
        verbose_name = _("顧客タグ")
        verbose_name_plural = _("顧客タグ")

    def __str__(self) -> str:
        return self.name


class FieldType(models.TextChoices):
    TEXT = "text", _("文字列")
    NUMBER = "number", _("数値")
    DATE = "date", _("日付")
    BOOLEAN = "boolean", _("はい/いいえ")
    CHOICE = "choice", _("選択肢")


class CustomField(models.Model):
    """A field the administrator adds to every customer (契約番号, 担当営業, 契約日 ...)."""

    key = models.SlugField(_("キー"), max_length=50, unique=True)
    label = models.CharField(_("項目名"), max_length=100)
    field_type = models.CharField(_("種類"), max_length=16, choices=FieldType.choices, default=FieldType.TEXT)
    choices = models.JSONField(_("選択肢"), default=list, blank=True)
    required = models.BooleanField(_("必須"), default=False)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        verbose_name = _("カスタム項目")
        verbose_name_plural = _("カスタム項目")

    def __str__(self) -> str:
        return self.label


class Customer(models.Model):
    kind = models.CharField(
        _("種別"), max_length=16, choices=CustomerKind.choices, default=CustomerKind.PERSON
    )
    name = models.CharField(_("名前"), max_length=200)
    kana = models.CharField(_("フリガナ"), max_length=200, blank=True, default="")
    company = models.CharField(_("会社名"), max_length=200, blank=True, default="")
    department = models.CharField(_("部署"), max_length=200, blank=True, default="")
    email = models.EmailField(_("メールアドレス"), max_length=254, blank=True, default="")
    postal_code = models.CharField(_("郵便番号"), max_length=10, blank=True, default="")
    address = models.CharField(_("住所"), max_length=300, blank=True, default="")
    memo = models.TextField(_("備考"), max_length=4000, blank=True, default="")
    custom = models.JSONField(_("カスタム項目"), default=dict, blank=True)
    tags = models.ManyToManyField(CustomerTag, blank=True, related_name="customers")
    owner_team = models.ForeignKey(
        "accounts.Team",
        verbose_name=_("担当チーム"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customers",
    )
    search_text = models.TextField(default="", blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["kana", "name", "id"]
        indexes = [
            models.Index(fields=["owner_team", "kana", "name", "id"], name="customer_team_kana_idx"),
            models.Index(fields=["kana", "name", "id"], name="customer_kana_idx"),
        ]
        verbose_name = _("顧客")
        verbose_name_plural = _("顧客")

    def __str__(self) -> str:
        return f"{self.name} ({self.company})" if self.company else self.name

    def refresh_search_text(self, numbers: list[str] | None = None) -> None:
        from callvault.apps.customers.text import search_text_for

        if numbers is None:
            numbers = list(self.phones.values_list("number", flat=True)) if self.pk else []
        self.search_text = search_text_for(self, numbers)


class PhoneLabel(models.TextChoices):
    MOBILE = "mobile", _("携帯")
    WORK = "work", _("会社")
    HOME = "home", _("自宅")
    FAX = "fax", _("FAX")
    OTHER = "other", _("その他")


class CustomerPhone(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="phones")
    number = models.CharField(_("電話番号"), max_length=32, db_index=True, help_text="E.164")
    label = models.CharField(_("種類"), max_length=16, choices=PhoneLabel.choices, default=PhoneLabel.WORK)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "number"], name="customerphone_customer_number_uniq")
        ]
        verbose_name = _("電話番号")
        verbose_name_plural = _("電話番号")

    def __str__(self) -> str:
        return self.number


class CustomerNote(models.Model):
    """One entry of the notes timeline (対応メモ); edits are audited with the previous text."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField(_("メモ"), max_length=4000)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["customer", "-created_at", "-id"], name="customernote_timeline_idx")]
        verbose_name = _("メモ")
        verbose_name_plural = _("メモ")


class ListKind(models.TextChoices):
    NUISANCE = "nuisance", _("迷惑電話")
    CAUTION = "caution", _("要注意")


class NumberListEntry(models.Model):
    """A number or a prefix on the nuisance (block) or caution list, for one team or everyone.

    ``pattern`` is E.164 (``+81312345678``), an E.164 prefix (``+81120``: every 0120 number), the
    sentinels ``anonymous`` (every 非通知 call) / ``payphone`` (公衆電話), or dialled digits.
    """

    pattern = models.CharField(_("番号"), max_length=32, db_index=True)
    is_prefix = models.BooleanField(_("前方一致"), default=False)
    kind = models.CharField(_("種類"), max_length=16, choices=ListKind.choices, default=ListKind.NUISANCE)
    reason = models.CharField(_("理由"), max_length=300, blank=True, default="")
    team = models.ForeignKey(
        "accounts.Team",
        verbose_name=_("チーム"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="number_list_entries",
        help_text=_("空欄なら組織全体"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pattern", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pattern", "is_prefix", "kind", "team"], name="numberlist_unique_entry"
            )
        ]
        verbose_name = _("迷惑電話・要注意リスト")
        verbose_name_plural = _("迷惑電話・要注意リスト")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.pattern}{'*' if self.is_prefix else ''}"
