"""Startup scan of the spool root and safe removal of finished spools."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callvault.spool.format import CALL_KEY_RE, JOURNAL_NAME, STREAM_NAME_RE, SpoolError
from callvault.spool.reader import read_journal

__all__ = ["SpoolError", "SpoolInfo", "find_spools", "remove_spool"]


@dataclass(frozen=True)
class SpoolInfo:
    path: Path
    call_key: str
    closed: bool
    """True when the journal ends with the ``closed`` record; False means interrupted."""
    journal: list[dict[str, Any]]
    stream_files: list[Path]
    """Stream files ordered by stream index."""
    bytes: int
    """Total size of the spool's files."""
    error: str | None = field(default=None)
    """Why the journal could not be read (missing or corrupt), else None."""


def _is_spool_file(name: str) -> bool:
    return name == JOURNAL_NAME or STREAM_NAME_RE.fullmatch(name) is not None


def _stream_index(path: Path) -> int:
    match = STREAM_NAME_RE.fullmatch(path.name)
    assert match is not None
    return int(match.group(1))


def _scan_dir(path: Path) -> tuple[list[os.DirEntry[str]], bool] | None:
    """Entries of a candidate spool dir and whether it has a journal, or None if foreign."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return None
    for entry in entries:
        if not _is_spool_file(entry.name) or not entry.is_file(follow_symlinks=False):
            return None
    return entries, any(entry.name == JOURNAL_NAME for entry in entries)


def find_spools(root: Path) -> list[SpoolInfo]:
    """List every spool directory directly under ``root``, sorted by call key.

    Directories that hold anything but spool files, symlinks and names that are not
    valid call keys are skipped: they are not ours.  A spool whose journal is
    missing or corrupt is still listed (``closed=False``, ``error`` set) so the
    operator sees it.
    """
    root = Path(root)
    try:
        candidates = sorted(os.scandir(root), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise SpoolError(f"spool root {root} is not a directory") from None
    except OSError as exc:
        raise SpoolError(f"cannot scan spool root {root}: {exc.strerror or exc}") from exc
    spools: list[SpoolInfo] = []
    for candidate in candidates:
        if not candidate.is_dir(follow_symlinks=False) or not CALL_KEY_RE.fullmatch(candidate.name):
            continue
        path = Path(candidate.path)
        scanned = _scan_dir(path)
        if scanned is None:
            continue
        entries, has_journal = scanned
        size = 0
        for entry in entries:
            try:
                size += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
        streams = sorted(
            (Path(entry.path) for entry in entries if entry.name != JOURNAL_NAME), key=_stream_index
        )
        journal: list[dict[str, Any]] = []
        error: str | None = None
        if has_journal:
            try:
                journal = read_journal(path)
            except SpoolError as exc:
                error = str(exc)
        else:
            error = f"{path}: journal not found"
        closed = bool(journal) and journal[-1].get("type") == "closed"
        spools.append(SpoolInfo(path, candidate.name, closed, journal, streams, size, error))
    return spools


def remove_spool(path: Path, *, root: Path) -> None:
    """Delete the spool directory ``path``, which must sit directly inside ``root``.

    Refuses (SpoolError, nothing deleted) anything outside ``root``, symlinks, and
    directories holding anything but a journal and stream files.  Works through
    directory fds with ``O_NOFOLLOW`` so a symlink swapped in cannot redirect it.
    """
    path = Path(path)
    root_real = os.path.realpath(root)
    if os.path.realpath(path.parent) != root_real or path.name in ("", ".", ".."):
        raise SpoolError(f"refusing to remove {path}: not directly inside spool root {root}")
    if not CALL_KEY_RE.fullmatch(path.name):
        raise SpoolError(f"refusing to remove {path}: {path.name!r} is not a call key")
    try:
        root_fd = os.open(root_real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise SpoolError(f"cannot open spool root {root}: {exc.strerror or exc}") from exc
    try:
        try:
            st = os.stat(path.name, dir_fd=root_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise SpoolError(f"cannot remove {path}: no such spool") from None
        if stat.S_ISLNK(st.st_mode):
            raise SpoolError(f"refusing to remove {path}: it is a symlink")
        if not stat.S_ISDIR(st.st_mode):
            raise SpoolError(f"refusing to remove {path}: not a directory")
        dir_fd = os.open(
            path.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd
        )
        try:
            names: list[str] = []
            with os.scandir(dir_fd) as it:
                for entry in it:
                    if not _is_spool_file(entry.name) or not entry.is_file(follow_symlinks=False):
                        raise SpoolError(f"refusing to remove {path}: {entry.name!r} is not a spool file")
                    names.append(entry.name)
            for name in names:
                os.unlink(name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        os.rmdir(path.name, dir_fd=root_fd)
    except OSError as exc:
        raise SpoolError(f"cannot remove {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(root_fd)
