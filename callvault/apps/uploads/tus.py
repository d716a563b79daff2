"""Resumable uploads with the tus protocol 1.0.0 (core, creation, checksum, termination).

https://tus.io/protocols/resumable-upload: ``POST`` creates an upload (``Upload-Length``,
``Upload-Metadata``), ``HEAD`` tells how many bytes the server has (``Upload-Offset``), ``PATCH``
appends bytes at that offset (``application/offset+octet-stream``, optionally with
``Upload-Checksum: sha1 <base64>``), ``DELETE`` abandons it.

The bytes go to ``DATA_DIR/uploads/staging/<id>.part``; the database row holds the offset that
is known to be on disk (fsync before the offset moves). A PATCH whose body ends early (the
connection broke) keeps what arrived, unless it carried a checksum, which can then not be
verified: that chunk is dropped. Partial uploads are never calls; they expire after
``CALLVAULT_UPLOAD_EXPIRE_HOURS`` and their bytes are deleted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from callvault.apps.uploads.models import Upload, UploadState
from callvault.apps.uploads.services import UploadError, staging_dir

log = logging.getLogger("callvault.uploads")

VERSION = "1.0.0"
EXTENSIONS = "creation,checksum,termination"
CHECKSUMS = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256}
OFFSET_TYPE = "application/offset+octet-stream"
READ_CHUNK = 256 * 1024
MAX_METADATA = 8192


def base_headers() -> dict[str, str]:
    return {"Tus-Resumable": VERSION, "Cache-Control": "no-store"}


def discovery_headers() -> dict[str, str]:
    return {
        "Tus-Resumable": VERSION,
        "Tus-Version": VERSION,
        "Tus-Extension": EXTENSIONS,
        "Tus-Max-Size": str(settings.UPLOAD_MAX_BYTES),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
    }


def check_version(request: HttpRequest) -> None:
    version = request.headers.get("Tus-Resumable")
    if version is not None and version.strip() != VERSION:
        raise UploadError(
            412,
            "tus_version",
            _("対応している tus のバージョンは %(v)s だけです。") % {"v": VERSION},
            "Tus-Resumable",
        )


def is_creation(request: HttpRequest) -> bool:
    return request.headers.get("Tus-Resumable") is not None or "Upload-Length" in request.headers


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs (values UTF-8)."""
    if not header:
        return {}
    if len(header) > MAX_METADATA:
        raise UploadError(400, "invalid_metadata", _("Upload-Metadata が長すぎます。"), "Upload-Metadata")
    out: dict[str, str] = {}
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        key, _sep, encoded = item.partition(" ")
        if not key or not key.isascii() or not key.isprintable() or key in out:
            raise UploadError(
                400, "invalid_metadata", _("Upload-Metadata のキーが正しくありません。"), "Upload-Metadata"
            )
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise UploadError(
                400,
                "invalid_metadata",
                _("Upload-Metadata の %(key)s の値は UTF-8 を Base64 にしたものにしてください。")
                % {"key": key},
                "Upload-Metadata",
            ) from None
        out[key] = value
    return out


def parse_length(value: str | None, name: str) -> int:
    if value is None or not value.strip().isdigit() or len(value.strip()) > 18:
        raise UploadError(
            400, "invalid_header", _("%(name)s は 0 以上の整数で指定してください。") % {"name": name}, name
        )
    return int(value.strip())


def check_size(length: int) -> None:
    if length > settings.UPLOAD_MAX_BYTES:
        raise UploadError(
            413,
            "payload_too_large",
            _("ファイルが大きすぎます (上限 %(mb)s MB)。")
            % {"mb": settings.UPLOAD_MAX_BYTES // (1024 * 1024)},
            "Upload-Length",
        )
    if length == 0:
        raise UploadError(
            400, "invalid_header", _("空のファイル (0 バイト) は受け付けません。"), "Upload-Length"
        )


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes


def parse_checksum(header: str | None) -> Checksum | None:
    if not header:
        return None
    algorithm, _sep, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUMS:
        raise UploadError(
            400,
            "checksum_algorithm",
            _("Upload-Checksum のアルゴリズムは %(names)s のいずれかです。")
            % {"names": ", ".join(CHECKSUMS)},
            "Upload-Checksum",
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise UploadError(
            400, "invalid_header", _("Upload-Checksum の値は Base64 です。"), "Upload-Checksum"
        ) from None
    if len(digest) != CHECKSUMS[algorithm]().digest_size:
        raise UploadError(
            400, "invalid_header", _("Upload-Checksum の長さが正しくありません。"), "Upload-Checksum"
        )
    return Checksum(algorithm, digest)


def staged_path(upload: Upload) -> Path:
    return staging_dir() / f"{upload.pk}.part"


def create(*, length: int, metadata: dict[str, str], client_upload_id: str, device: Any, user: Any) -> Upload:
    """The row first, then the empty staging file (a file without a row is swept as an orphan)."""
    upload = Upload.objects.create(
        device=device,
        user=user,
        length=length,
        metadata=metadata,
        client_upload_id=client_upload_id,
        expires_at=timezone.now() + timedelta(hours=settings.UPLOAD_EXPIRE_HOURS),
    )
    path = staged_path(upload)
    with path.open("wb") as fh:
        os.fsync(fh.fileno())
    return upload


@contextlib.contextmanager
def locked(upload: Upload) -> Iterator[IO[bytes]]:
    """The staging file, opened for writing and locked: one PATCH at a time per upload (423)."""
    path = staged_path(upload)
    try:
        fh = path.open("r+b")
    except FileNotFoundError:
        raise UploadError(
            410, "upload_gone", _("このアップロードのデータはもうありません。最初からやり直してください。")
        ) from None
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UploadError(
                423,
                "upload_locked",
                _("このアップロードには別の PATCH が進行中です。終わってから再開してください。"),
            ) from None
        yield fh


def append(upload: Upload, request: HttpRequest, offset: int, length: int, checksum: Checksum | None) -> int:
    """Write the body at ``offset``; returns the new offset that is safely on disk."""
    with locked(upload) as fh:
        upload.refresh_from_db(fields=["offset", "state"])
        if upload.offset != offset:
            raise UploadError(
                409,
                "offset_mismatch",
                _("Upload-Offset がサーバーの値 (%(offset)s) と違います。") % {"offset": upload.offset},
                "Upload-Offset",
            )
        fh.seek(offset)
        fh.truncate()
        digest = CHECKSUMS[checksum.algorithm]() if checksum else None
        received = 0
        while received < length:
            try:
                block = request.read(min(READ_CHUNK, length - received))
            except OSError:
                block = b""
            if not block:
                break
            fh.write(block)
            if digest is not None:
                digest.update(block)
            received += len(block)
        if checksum is not None and digest is not None:
            if received < length or digest.digest() != checksum.digest:
                fh.truncate(offset)
                if received < length:
                    raise UploadError(
                        400,
                        "incomplete_body",
                        _("本文が途中で終わりました。同じ位置から送り直してください。"),
                    )
                raise UploadError(
                    460,
                    "checksum_mismatch",
                    _("Upload-Checksum が一致しません。このチャンクを送り直してください。"),
                    "Upload-Checksum",
                )
        fh.flush()
        os.fsync(fh.fileno())
        new_offset = offset + received
        Upload.objects.filter(pk=upload.pk, offset=offset).update(
            offset=new_offset, updated_at=timezone.now()
        )
        upload.offset = new_offset
    return new_offset


def discard(upload: Upload, state: Any, *, error: str = "", code: str = "") -> None:
    Upload.objects.filter(pk=upload.pk).update(state=state, error=error[:2000], error_code=code[:40])
    upload.state, upload.error, upload.error_code = state, error, code
    staged_path(upload).unlink(missing_ok=True)


def expire_uploads() -> int:
    """Expire unfinished uploads past their time and delete staged bytes nobody owns; returns count."""
    now = timezone.now()
    expired = 0
    for upload in Upload.objects.filter(state=UploadState.RECEIVING, expires_at__lt=now):
        discard(upload, UploadState.EXPIRED, error="期限切れ", code="expired")
        expired += 1
    known = {
        str(pk) for pk in Upload.objects.filter(state=UploadState.RECEIVING).values_list("pk", flat=True)
    }
    cutoff = now.timestamp() - 3600
    for path in staging_dir().glob("*"):
        stem = path.name.split(".", 1)[0]
        if stem in known:
            continue
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                log.warning("x removed orphan staging file %s", path.name)
    # Django's temporary files of multipart uploads whose process died mid-request.
    for path in Path(settings.FILE_UPLOAD_TEMP_DIR or staging_dir()).glob("*.upload*"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
    return expired
