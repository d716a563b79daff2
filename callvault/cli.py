"""The ``callvault`` command.

``callvault serve`` runs everything on the embedded default (SQLite + files
under ``--data-dir``): the SIPREC recorder, the job worker and the web server,
each in its own process so that encoding never steals time from packet capture.
``recorder``, ``worker`` and ``web`` run the parts separately for scale-out.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callvault.config import ConfigError, parse_port_range


def _setup_django(data_dir: str | None) -> None:
    if data_dir:
        os.environ["CALLVAULT_DATA_DIR"] = str(Path(data_dir).expanduser().resolve())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "callvault.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    settings.SPOOL_DIR.mkdir(parents=True, exist_ok=True)
    settings.RECORDINGS_DIR.mkdir(parents=True, exist_ok=True)


def _migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=os.environ.get("CALLVAULT_DATA_DIR", "data"),
        help="directory for the database, spool and recordings (env CALLVAULT_DATA_DIR; default ./data)",
    )


def _add_recorder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sip-host",
        default=os.environ.get("CALLVAULT_SIP_HOST", "0.0.0.0"),
        help="address to listen on for SIP (UDP and TCP); default 0.0.0.0",
    )
    p.add_argument(
        "--sip-port",
        type=int,
        default=int(os.environ.get("CALLVAULT_SIP_PORT", "5060")),
        help="SIP port for UDP and TCP; default 5060",
    )
    p.add_argument(
        "--rtp-ports",
        default=os.environ.get("CALLVAULT_RTP_PORTS", "20000-29999"),
        help="UDP port range for RTP, LOW-HIGH; default 20000-29999",
    )
    p.add_argument(
        "--media-ip",
        default=os.environ.get("CALLVAULT_MEDIA_IP", ""),
        help="address announced in SDP answers (default: the SIP listen address, "
        "or the address the INVITE arrived on)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("CALLVAULT_RECORDER_METRICS_PORT", "0")),
        help="serve the recorder's own Prometheus /metrics on this port (default 0: off; "
        "the web's /metrics reads the recorder through the data directory)",
    )
    p.add_argument(
        "--metrics-host",
        default=os.environ.get("CALLVAULT_RECORDER_METRICS_HOST", "127.0.0.1"),
        help="address for --metrics-port; default 127.0.0.1 (others need CALLVAULT_METRICS_TOKEN)",
    )


def _add_web_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--http-host",
        default=os.environ.get("CALLVAULT_HTTP_HOST", "127.0.0.1"),
        help="address for the web server; default 127.0.0.1",
    )
    p.add_argument(
        "--http-port",
        type=int,
        default=int(os.environ.get("CALLVAULT_HTTP_PORT", "8000")),
        help="port for the web server; default 8000",
    )
    p.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="web server processes sharing the port (env CALLVAULT_WEB_WORKERS; default 1). "
        "Pages are CPU-bound: use up to one per core the recorder does not need",
    )


MAX_WEB_WORKERS = 64


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes, got {text!r}") from None
    if not 1 <= value <= MAX_WEB_WORKERS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_WEB_WORKERS}, got {value}")
    return value


def _web_workers(args: argparse.Namespace) -> int:
    """``--workers``, else ``CALLVAULT_WEB_WORKERS``, else 1."""
    if args.workers is not None:
        return int(args.workers)
    from callvault.config import env_int

    return env_int("CALLVAULT_WEB_WORKERS", 1, minimum=1, maximum=MAX_WEB_WORKERS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callvault",
        description="callvault: self-hosted call recording (SIPREC recorder, web app, jobs).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("serve", help="run recorder, worker and web together on the embedded default")
    _add_common(p)
    _add_recorder_args(p)
    _add_web_args(p)

    p = sub.add_parser("recorder", help="run the SIPREC recording server only")
    _add_common(p)
    _add_recorder_args(p)

    p = sub.add_parser("worker", help="run the job worker only (finalize recordings, ...)")
    _add_common(p)

    p = sub.add_parser("web", help="run the web server (ASGI) only")
    _add_common(p)
    _add_web_args(p)

    p = sub.add_parser("calls", help="list recorded calls")
    _add_common(p)
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.add_argument("--limit", type=int, default=50, help="how many calls, newest first (default 50)")

    p = sub.add_parser(
        "import",
        help="import calls from pcap/pcapng captures (SIP over UDP/TCP and RTP; idempotent)",
        description="Find SIP calls and their RTP in capture files and record them like SIPREC calls. "
        "Importing the same file again creates no duplicates.",
    )
    _add_common(p)
    p.add_argument("files", nargs="+", metavar="FILE", help="pcap or pcapng files (tcpdump, tshark, dumpcap)")
    p.add_argument(
        "--finalize",
        action="store_true",
        help="make the recordings in this process before exiting (default: queue them for the workers)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser(
        "sniff",
        help="record calls live from a network interface (a mirror/SPAN port) with libpcap",
        description="Follow SIP calls and their RTP on an interface (needs CAP_NET_RAW) and record "
        "them like SIPREC calls. Stop with Ctrl-C or SIGTERM; open calls are ended and kept.",
    )
    _add_common(p)
    p.add_argument("--interface", "-i", required=True, help="interface to capture on, e.g. eth1 or lo")
    p.add_argument(
        "--filter",
        "-f",
        default=None,
        help="BPF capture filter, e.g. 'udp or tcp port 5060' (default: everything)",
    )
    p.add_argument(
        "--buffer-mb",
        type=int,
        default=256,
        metavar="MB",
        help="kernel capture ring in MB (default 256: about 10 s of 500 calls, so a burst of "
        "call set-ups or a slow disk does not drop packets)",
    )

    p = sub.add_parser("retry", help="queue the recording of a call for processing again")
    _add_common(p)
    p.add_argument("call_id", help="the call's id (UUID)")

    p = sub.add_parser(
        "check-recordings",
        help="check that every finished call has a complete recording (missing, empty, short, one-sided)",
        description=(
            "Check calls that ended more than CALLVAULT_COMPLETENESS_GRACE seconds ago (default 600): "
            "flag those whose recording is missing, empty, shorter than the call by more than 2 s or "
            "single-sided, and files in storage without a recording row. Results are shown on the "
            "page /checks/recordings/ and in /metrics. Safe to run at any time (idempotent)."
        ),
    )
    _add_common(p)
    p.add_argument(
        "--all", action="store_true", help="check every finished call again, not only new/flagged ones"
    )
    p.add_argument("--days", type=int, default=None, help="only calls that ended in the last DAYS days")
    p.add_argument("--no-scan", action="store_true", help="skip the scan of the recordings directory")
    p.add_argument("--limit", type=int, default=100000, help="at most this many calls (default 100000)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--strict", action="store_true", help="exit 1 if any call is flagged or a file is orphaned"
    )

    p = sub.add_parser("audit", help="check the audit log's hash chain")
    _add_common(p)
    p.add_argument(
        "action", choices=["verify"], help="verify: recompute every hash; exit 1 if the chain is broken"
    )

    p = sub.add_parser(
        "import-audio",
        help="import a folder of recordings (WAV/MP3/M4A/AMR/Opus/FLAC + calls.csv or NAME.json)",
        description="Import every recording in DIR as a call. Metadata comes from NAME.json next to "
        "each file or from DIR/calls.csv (UTF-8 or CP932); see README 'Folder import'. Files are "
        "validated by decoding; already imported files are skipped. Exit status 1 if any file was "
        "rejected.",
    )
    _add_common(p)
    p.add_argument("folder", metavar="DIR", help="the folder to import")
    p.add_argument("--dry-run", action="store_true", help="check every file and report, store nothing")

    p = sub.add_parser("test-call", help="place a test SIPREC call (tones on both legs) to a recorder")
    p.add_argument("target", help="recorder address HOST:PORT, e.g. 127.0.0.1:5060")
    p.add_argument("--seconds", type=float, default=5.0, help="length of the call (default 5)")
    p.add_argument("--local-ip", default="127.0.0.1", help="this machine's address as the recorder sees it")

    from callvault.apps.customers.cli import add_parser as add_import_customers

    add_import_customers(sub, _add_common)

    p = sub.add_parser(
        "manage", help="run a Django management command, e.g. createsuperuser --noinput", add_help=False
    )
    _add_common(p)
    p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _cmd_calls(args: argparse.Namespace) -> int:
    from callvault.apps.calls.models import Call
    from callvault.apps.calls.services import call_as_dict

    calls = (
        Call.objects.prefetch_related("participants", "streams", "dtmf_events")
        .select_related("recording")
        .order_by("-started_at")[: max(args.limit, 0)]
    )
    rows = [call_as_dict(c) for c in calls]
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    from callvault.phone import display

    if not rows:
        print("通話はまだありません。")
        return 0
    from django.utils import timezone

    widths = (16, 15, 15, 8, 8, 10)
    header = ("開始日時", "発信者", "着信者", "通話時間", "状態", "録音")
    print("  ".join(_pad(h, w) for h, w in zip(header, widths, strict=True)) + "  ID")
    for c in calls:
        cells = (
            f"{timezone.localtime(c.started_at):%Y/%m/%d %H:%M}",
            display(c.caller_number) or "不明",
            display(c.callee_number) or "不明",
            _duration_ja(c.duration),
            str(c.get_state_display()),
            str(c.get_recording_state_display()),
        )
        print("  ".join(_pad(v, w) for v, w in zip(cells, widths, strict=True)) + f"  {c.id}")
    return 0


def _pad(text: str, width: int) -> str:
    """Left-align for a terminal, counting full-width (Japanese) characters as two columns."""
    import unicodedata

    cols = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - cols)


def _duration_ja(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s // 60}分{s % 60:02d}秒" if s >= 60 else f"{s}秒"


def _cmd_check_recordings(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from django.utils import timezone

    from callvault.apps.calls.models import Call
    from callvault.apps.completeness.models import Reason
    from callvault.apps.completeness.services import run_check
    from callvault.phone import display

    if args.days is not None and args.days < 1:
        print("callvault check-recordings: --days must be 1 or more", file=sys.stderr)
        return 2
    if args.limit < 1:
        print("callvault check-recordings: --limit must be 1 or more", file=sys.stderr)
        return 2
    since = timezone.now() - timedelta(days=args.days) if args.days else None
    summary = run_check(everything=args.all, since=since, limit=args.limit, scan=not args.no_scan)
    flagged = Call.objects.filter(completeness="flagged").order_by("-started_at")
    if since is not None:
        flagged = flagged.filter(ended_at__gte=since)
    if args.json:
        out = summary.as_dict()
        out["flagged_total"] = flagged.count()
        out["flagged_calls"] = [
            {"id": str(c.pk), "started_at": c.started_at.isoformat(), "reasons": c.completeness_reasons}
            for c in flagged[:1000]
        ]
        json.dump(out, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        labels = dict(Reason.choices)
        print(
            f"チェックした通話: {summary.checked} 件"
            f" (問題なし {summary.ok} 件、問題あり {summary.flagged} 件)"
        )
        if summary.by_reason:
            print("理由別: " + "、".join(f"{labels.get(k, k)} {n} 件" for k, n in summary.by_reason.items()))
        if not args.no_scan:
            print(f"保存先のファイル: {summary.scanned_files} 件を確認")
        print(f"録音の記録がない保存先のファイル: {summary.orphans} 件")
        total = flagged.count()
        print(f"問題のある通話 (全体): {total} 件")
        for c in flagged[:20]:
            reasons = "、".join(str(labels.get(r.get("code"), "?")) for r in c.completeness_reasons)
            print(
                f"  {timezone.localtime(c.started_at):%Y/%m/%d %H:%M}  "
                f"{display(c.caller_number) or '不明'} → {display(c.callee_number) or '不明'}"
                f"  {reasons}  {c.pk}"
            )
        if total > 20:
            print(f"  … ほか {total - 20} 件 (画面: /checks/recordings/)")
    if args.strict and (flagged.exists() or summary.orphans):
        return 1
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from django.conf import settings

    from callvault.apps.calls.models import Call
    from callvault.apps.recordings.finalize import finalize_call
    from callvault.capture.passive import BackgroundIngest, import_files

    _migrate()
    paths = [Path(f).expanduser() for f in args.files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"callvault import: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2

    ingest = BackgroundIngest(enqueue=not args.finalize)
    result = import_files(
        paths,
        settings.SPOOL_DIR,
        is_known=lambda call_id: Call.objects.filter(pk=call_id).exists(),
        on_closed=ingest,
        progress=sys.stderr,
    )
    started = time.monotonic()
    result.call_ids, ingest_errors = ingest.close()
    result.seconds += time.monotonic() - started  # waiting for the last calls to be entered
    result.calls_created = len(result.call_ids)
    for error in ingest_errors:
        print(f"callvault import: could not enter call {error}", file=sys.stderr)
    ready = 0
    if args.finalize:
        for call_id in result.call_ids:
            try:
                if finalize_call(call_id) in ("ready", "none"):
                    ready += 1
            except Exception as exc:  # the call stays visible as pending/failed with the error
                print(f"callvault import: recording of call {call_id} failed: {exc}", file=sys.stderr)
    summary = {
        "files": [
            {"path": f.path, "packets": f.packets, "bytes": f.bytes, "error": f.error} for f in result.files
        ],
        "calls_found": result.calls_found,
        "calls_created": result.calls_created,
        "duplicates_skipped": result.duplicates,
        "packets": result.packets,
        "bytes": result.bytes,
        "seconds": round(result.seconds, 3),
        "cpu_seconds": round(result.cpu_seconds, 3),
        "ingest_cpu_seconds": round(ingest.cpu_seconds, 3),
        "mb_per_s": round(result.bytes / 1e6 / max(result.seconds, 1e-9), 1),
        "skipped": {**result.stats, **result.net},
        "recordings_made": ready if args.finalize else None,
        "call_ids": result.call_ids,
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        _print_import_summary(summary, finalize=args.finalize)
    return 1 if any(f.error for f in result.files) else 0


def _print_import_summary(s: dict[str, Any], *, finalize: bool) -> None:
    for f in s["files"]:
        state = f"エラー: {f['error']}" if f["error"] else "OK"
        print(f"{f['path']}: {f['packets']:,} パケット, {f['bytes'] / 1e6:,.1f} MB — {state}")
    print(
        f"通話 {s['calls_found']} 件を検出: 新規 {s['calls_created']} 件, "
        f"取り込み済みのため スキップ {s['duplicates_skipped']} 件"
    )
    print(
        f"{s['packets']:,} パケット / {s['bytes'] / 1e6:,.1f} MB を {s['seconds']:.1f} 秒で処理 "
        f"({s['mb_per_s']:.1f} MB/s)"
    )
    sk = s["skipped"]
    reasons = [
        ("other_udp", "SIP/RTP 以外の UDP"),
        ("other_tcp", "SIP 以外の TCP"),
        ("not_ip", "IP 以外のフレーム"),
        ("malformed", "壊れたパケット"),
        ("unknown_linktype", "未対応のリンク種別"),
        ("sip_errors", "解析できない SIP メッセージ"),
        ("rtp_early", "応答前の RTP (早期メディア)"),
        ("rtp_foreign", "別の送信元からの RTP"),
        ("rtp_garbage", "RTP ポート宛ての RTP でないデータ"),
        ("fragments_dropped", "組み立てられなかった IP フラグメント"),
        ("tcp_gaps", "キャプチャ欠落のある TCP"),
    ]
    skipped = [f"  {label}: {sk[key]:,}" for key, label in reasons if sk.get(key)]
    if skipped:
        print("記録しなかったもの:")
        print("\n".join(skipped))
    if finalize:
        print(f"録音を作成: {s['recordings_made']} 件")
    elif s["calls_created"]:
        print("録音はワーカー (callvault serve / callvault worker) が作成します。")


def _cmd_sniff(args: argparse.Namespace) -> int:
    import logging

    from callvault.capture.passive import CaptureUnavailable, open_live, run_sniffer

    try:
        if not 1 <= args.buffer_mb <= 4096:
            raise CaptureUnavailable(f"--buffer-mb must be between 1 and 4096, not {args.buffer_mb}")
        # first: a missing capability is the likely problem
        handle = open_live(args.interface, args.filter, buffer_mb=args.buffer_mb)
    except CaptureUnavailable as exc:
        print(f"callvault sniff: {exc}", file=sys.stderr)
        return 2
    _migrate()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return run_sniffer(handle, args.interface, args.filter)


def _cmd_retry(args: argparse.Namespace) -> int:
    from callvault.apps.recordings.finalize import request_retry

    try:
        message = request_retry(args.call_id)
    except LookupError as exc:
        print(f"callvault retry: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0


def _cmd_import_audio(args: argparse.Namespace) -> int:
    import getpass

    from callvault.apps.uploads.importer import ImportError_, Outcome, import_folder

    labels = {"imported": "取込", "duplicate": "重複", "rejected": "拒否", "ok": "確認OK"}

    def show(o: Outcome) -> None:
        call = f" → 通話 {o.call_id}" if o.call_id else ""
        detail = f": {o.detail}" if o.detail else ""
        print(f"{labels.get(o.status, o.status)}  {o.file}{call}{detail}", flush=True)

    try:
        operator = f"import-audio ({getpass.getuser()})"
    except (KeyError, OSError):
        operator = "import-audio"
    try:
        summary = import_folder(Path(args.folder), dry_run=args.dry_run, operator=operator, progress=show)
    except ImportError_ as exc:
        print(f"callvault import-audio: {exc}", file=sys.stderr)
        return 2
    rejected = summary.count("rejected")
    if args.dry_run:
        print(
            f"確認のみ (何も保存していません): 取り込み可能 {summary.count('ok')} 件、"
            f"重複 {summary.count('duplicate')} 件、拒否 {rejected} 件"
        )
    else:
        print(
            f"完了: 取込 {summary.count('imported')} 件、重複のためスキップ {summary.count('duplicate')} 件、"
            f"拒否 {rejected} 件"
        )
    return 1 if rejected else 0


def _cmd_test_call(args: argparse.Namespace) -> int:
    """Behave like an SBC: one SIPREC call, a 440 Hz beep from the caller and 880 Hz from the callee."""
    import asyncio

    import numpy as np

    from callvault.tools.siprec_client import Leg, SipError, SiprecClient

    host, _, port_s = args.target.rpartition(":")
    if not host or not port_s.isdigit():
        print(f"callvault test-call: expected HOST:PORT, got {args.target!r}", file=sys.stderr)
        return 2
    n = int(max(1.0, min(args.seconds, 600.0)) * 8000)
    t = np.arange(n) / 8000
    beeps = (np.sin(2 * np.pi * 0.5 * t) > 0).astype(np.float64)  # one second on, one off

    def tone(freq: float, phase: float) -> np.ndarray:
        on = np.roll(beeps, int(phase * 8000))
        return (np.sin(2 * np.pi * freq * t) * 6000 * on).astype(np.int16)

    client = SiprecClient((host, int(port_s)), local_ip=args.local_ip)
    try:
        result = asyncio.run(
            client.call(
                Leg("0312345678", "テスト 発信者", tone(440, 0.0)),
                Leg("200", "テスト 着信者", tone(880, 1.0)),
            )
        )
    except (OSError, SipError) as exc:
        print(f"callvault test-call: {exc}", file=sys.stderr)
        return 1
    if result.invite_status != 200:
        print(
            f"callvault test-call: 録音サーバーが INVITE を {result.invite_status} で拒否しました",
            file=sys.stderr,
        )
        return 1
    print(
        f"テスト通話を送信しました (Call-ID {result.call_id}、"
        f"{result.packets_sent[0]}+{result.packets_sent[1]} パケット、BYE への応答 {result.bye_status})。"
        "`callvault calls` で録音を確認してください。"
    )
    return 0 if result.bye_status == 200 else 1


def _run_children(commands: list[list[str]]) -> int:
    """Start the parts as child processes; stop them all when one fails or on a signal."""
    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    names = [cmd[3] for cmd in commands]
    for cmd in commands:
        procs.append(subprocess.Popen(cmd))
    rc = 0
    try:
        while not stopping:
            for name, p in zip(names, procs, strict=True):
                code = p.poll()
                if code is not None:
                    print(f"callvault serve: {name} exited with {code}; stopping", file=sys.stderr)
                    rc = code or 1
                    stopping = True
                    break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "test-call":
            return _cmd_test_call(args)
        if args.command == "manage":
            _setup_django(args.data_dir)
            from django.core.management import execute_from_command_line

            execute_from_command_line(["callvault manage", *args.args])
            return 0

        if hasattr(args, "rtp_ports"):
            args.rtp_range = parse_port_range(args.rtp_ports, "--rtp-ports")
        _setup_django(args.data_dir)

        if args.command == "serve":
            _migrate()
            data = str(Path(args.data_dir).expanduser().resolve())
            me = [sys.executable, "-m", "callvault.cli"]
            return _run_children(
                [
                    [
                        *me,
                        "recorder",
                        "--data-dir",
                        data,
                        "--sip-host",
                        args.sip_host,
                        "--sip-port",
                        str(args.sip_port),
                        "--rtp-ports",
                        args.rtp_ports,
                        "--media-ip",
                        args.media_ip,
                        "--metrics-host",
                        args.metrics_host,
                        "--metrics-port",
                        str(args.metrics_port),
                    ],
                    [*me, "worker", "--data-dir", data],
                    [
                        *me,
                        "web",
                        "--data-dir",
                        data,
                        "--http-host",
                        args.http_host,
                        "--http-port",
                        str(args.http_port),
                        "--workers",
                        str(_web_workers(args)),
                    ],
                ]
            )
        if args.command == "recorder":
            from callvault.capture.siprec_server import run_recorder

            return run_recorder(
                sip_host=args.sip_host,
                sip_port=args.sip_port,
                rtp_range=args.rtp_range,
                media_ip=args.media_ip or None,
                metrics_host=args.metrics_host,
                metrics_port=args.metrics_port,
            )
        if args.command == "worker":
            from callvault.jobs import run_worker

            return run_worker()
        if args.command == "web":
            import uvicorn

            # Several processes share the port (the kernel spreads connections). Live events
            # reach every process: each tails the event table (embedded) or Redis (scale-out).
            uvicorn.run(
                "callvault.asgi:application",
                host=args.http_host,
                port=args.http_port,
                log_level="warning",
                lifespan="off",
                workers=_web_workers(args),
            )
            return 0
        if args.command == "calls":
            return _cmd_calls(args)
        if args.command == "retry":
            return _cmd_retry(args)
        if args.command == "import-customers":
            from callvault.apps.customers.cli import run as import_customers

            return import_customers(args.file, dry_run=args.dry_run, team=args.team, as_json=args.json)
        if args.command == "check-recordings":
            return _cmd_check_recordings(args)

        if args.command == "import":
            return _cmd_import(args)
        if args.command == "sniff":
            return _cmd_sniff(args)
        if args.command == "import-audio":
            _migrate()
            return _cmd_import_audio(args)
        if args.command == "audit":
            from django.core.management import call_command

            try:
                call_command("audit_verify")
            except SystemExit as exc:
                return int(exc.code or 0)
            return 0
    except ConfigError as exc:
        print(f"callvault: {exc}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
