"""``callvault import-audio DIR``: a folder of recordings (a recorder box's export) into calls.

Metadata, per file, from either
- a JSON sidecar next to the audio, same name with ``.json`` (``0001.wav`` + ``0001.json``), or
- one ``calls.csv`` in DIR (UTF-8, with or without BOM, or CP932/Shift_JIS as Japanese Excel
  saves it), one row per file; the ``file`` column is a path relative to DIR.

Column and key names: ``file`` (ファイル名), ``started_at`` (開始日時/日時), ``caller``
(発信者番号), ``callee`` (着信者番号/相手番号), ``direction`` (方向/発着信: in/out/internal or
着信/発信/内線), ``duration`` (通話時間), ``user`` (担当者), ``team`` (チーム), ``caller_name``,
``callee_name``, ``layout``. A sidecar wins over a CSV row for the same file.

Every file goes through the same validation and storage as an upload; paths that leave DIR are
refused; files without metadata are reported, not guessed. Re-running imports nothing twice.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callvault.apps.uploads import services
from callvault.apps.uploads.media import AudioRejected, validate_audio

CSV_NAME = "calls.csv"
FILE_COLUMNS = ("file", "filename", "path", "ファイル名", "ファイル", "録音ファイル", "音声ファイル")
MAX_CSV_BYTES = 50 * 1024 * 1024
MAX_SIDECAR_BYTES = 64 * 1024


class ImportError_(Exception):
    """The folder or its CSV cannot be read at all (nothing is imported)."""


@dataclass
class Outcome:
    file: str
    status: str  # imported, duplicate, rejected, ok (dry run)
    detail: str = ""
    call_id: str = ""


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def decode_csv(data: bytes) -> str:
    """UTF-8 (BOM or not) first, then CP932 (Windows Japanese, a superset of Shift_JIS)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp932")
    except UnicodeDecodeError:
        raise ImportError_(
            f"{CSV_NAME} の文字コードを判別できません (UTF-8 か Shift_JIS/CP932 で保存してください)。"
        ) from None


def read_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    if path.stat().st_size > MAX_CSV_BYTES:
        raise ImportError_(f"{CSV_NAME} が大きすぎます (50 MB まで)。")
    text = decode_csv(path.read_bytes())
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or not any(c.strip() in FILE_COLUMNS for c in reader.fieldnames):
        raise ImportError_(f"{CSV_NAME} にファイル名の列 (file または ファイル名) がありません。")
    rows = []
    for number, row in enumerate(reader, start=2):
        clean = {str(k).strip(): (v or "").strip() for k, v in row.items() if k is not None}
        rows.append((number, clean))
    return rows


def safe_path(root: Path, name: str) -> Path | None:
    """``name`` inside ``root`` (after resolving ``..`` and symlinks), else None."""
    if not name or "\x00" in name:
        return None
    candidate = Path(name.replace("\\", "/"))
    if candidate.is_absolute():
        return None
    resolved = (root / candidate).resolve()
    try:
        resolved.relative_to(root)
    except ValueError:
        return None
    return resolved


def _file_of(row: dict[str, str]) -> str:
    for column in FILE_COLUMNS:
        if row.get(column):
            return row[column]
    return ""


def _sidecar(audio: Path) -> dict[str, Any] | None:
    path = audio.with_suffix(".json")
    if path == audio or not path.is_file():
        return None
    if path.stat().st_size > MAX_SIDECAR_BYTES:
        raise services.bad("sidecar", f"{path.name} が大きすぎます (64 KiB まで)。")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise services.bad("sidecar", f"{path.name} を JSON として読めません ({exc})。") from None
    if not isinstance(data, dict) or any(isinstance(v, dict | list) for v in data.values()):
        raise services.bad("sidecar", f"{path.name} は 文字列・数値だけのオブジェクトにしてください。")
    return {str(k): "" if v is None else str(v) for k, v in data.items()}


def _candidates(root: Path) -> list[Path]:
    """Files in DIR (recursively) that may be audio: everything but metadata and hidden files."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.lower().endswith((".json", ".csv")):
                continue
            path = Path(dirpath) / name
            if path.is_symlink() and safe_path(root, str(path.relative_to(root))) is None:
                continue  # reported below as outside the folder if the CSV names it
            out.append(path)
    return out


def import_folder(folder: Path, **kwargs: Any) -> Summary:
    """Import DIR (see the module doc); messages in the installation's language (Japanese)."""
    from django.conf import settings
    from django.utils import translation

    with translation.override(settings.LANGUAGE_CODE):
        return _import_folder(folder, **kwargs)


def _import_folder(
    folder: Path,
    *,
    dry_run: bool = False,
    operator: str = "",
    progress: Callable[[Outcome], None] | None = None,
) -> Summary:
    from django.conf import settings

    root = folder.expanduser().resolve()
    if not root.is_dir():
        raise ImportError_(f"フォルダー {folder} がありません。")
    services.reconcile_pending()
    summary = Summary()

    def report(outcome: Outcome) -> None:
        summary.outcomes.append(outcome)
        if progress is not None:
            progress(outcome)

    rows: dict[Path, tuple[str, dict[str, Any]]] = {}
    csv_path = root / CSV_NAME
    if csv_path.is_file():
        for number, row in read_csv(csv_path):
            name = _file_of(row)
            where = f"{CSV_NAME} {number} 行目"
            if not name:
                report(Outcome(where, "rejected", "ファイル名の列が空です。"))
                continue
            path = safe_path(root, name)
            if path is None:
                report(
                    Outcome(
                        name, "rejected", f"{where}: パスがフォルダーの外を指しています (取り込みません)。"
                    )
                )
                continue
            if not path.is_file():
                report(Outcome(name, "rejected", f"{where}: ファイルがありません。"))
                continue
            rows[path] = (where, row)

    for path in _candidates(root):
        rel = str(path.relative_to(root))
        try:
            sidecar = _sidecar(path)
        except services.UploadError as exc:
            report(Outcome(rel, "rejected", exc.message))
            continue
        listed = rows.pop(path.resolve(), None) or rows.pop(path, None)
        raw = sidecar if sidecar is not None else (listed[1] if listed else None)
        if raw is None:
            report(
                Outcome(
                    rel,
                    "rejected",
                    f"メタデータがありません ({path.stem}.json か {CSV_NAME} の行が必要です)。",
                )
            )
            continue
        raw = {**raw, "filename": path.name}
        report(_one(path, rel, raw, dry_run=dry_run, operator=operator, settings=settings))
    for path, (_where, _row) in rows.items():  # CSV rows whose file the walk did not find (hidden ...)
        raw = {**_row, "filename": path.name}
        rel = str(path.relative_to(root))
        report(_one(path, rel, raw, dry_run=dry_run, operator=operator, settings=settings))
    return summary


def _one(
    path: Path, rel: str, raw: dict[str, str], *, dry_run: bool, operator: str, settings: Any
) -> Outcome:
    origin = services.Origin(via="import", operator=operator)
    try:
        info = services.parse_info(raw)
        if path.stat().st_size > settings.UPLOAD_MAX_BYTES:
            return Outcome(
                rel, "rejected", "ファイルが大きすぎます (CALLVAULT_UPLOAD_MAX_MB を超えています)。"
            )
        with _private_copy(path) as copy:
            sha, existing = services.check_duplicate(copy, info, origin)
            if existing is not None:
                if not dry_run:
                    services.ingest(copy, info, origin, sha=sha)  # audits the duplicate
                return Outcome(rel, "duplicate", "同じファイルはすでに取り込まれています。", str(existing.pk))
            if dry_run:
                audio = validate_audio(
                    copy,
                    max_seconds=settings.UPLOAD_MAX_SECONDS,
                    min_bytes_per_second=settings.UPLOAD_MIN_BYTES_PER_SECOND,
                )
                from callvault.apps.calls.models import Call

                services.resolve_assignment(
                    Call(started_at=info.started_at, direction=info.direction), info, origin
                )
                return Outcome(rel, "ok", f"{audio.ext} {audio.channels}ch {audio.duration:.1f} 秒")
            result = services.ingest(copy, info, origin, sha=sha)
    except services.UploadError as exc:
        param = f"{exc.param}: " if exc.param and exc.param not in ("file",) else ""
        return Outcome(rel, "rejected", param + exc.message)
    except AudioRejected as exc:
        return Outcome(rel, "rejected", exc.message)
    except OSError as exc:
        return Outcome(rel, "rejected", f"読み取れません ({exc.strerror or exc})。")
    status = "imported" if result.created else "duplicate"
    return Outcome(rel, status, "", str(result.call.pk))


class _private_copy:
    """A copy in the staging area, so the file cannot change between hashing, checking and storing."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.path: Path | None = None

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(dir=services.staging_dir(), prefix="import-", suffix=".tmp")
        with os.fdopen(fd, "wb") as out, self.source.open("rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
        self.path = Path(name)
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
