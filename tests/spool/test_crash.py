"""A recorder killed with SIGKILL keeps everything it flushed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from callvault.spool.reader import read_journal, read_stream
from callvault.spool.recovery import find_spools
from tests.spool.helpers import rtp_packet

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from callvault.spool.writer import CallSpool, SpoolFlusher
    from tests.spool.helpers import rtp_packet

    flusher = SpoolFlusher()
    call = CallSpool(Path(sys.argv[1]), "call-killed", flusher=flusher)
    streams = [call.open_stream(0), call.open_stream(1)]
    seq = 0
    for batch in range(40):
        call.journal({"type": "batch", "n": batch})
        for _ in range(25):
            for index, stream in enumerate(streams):
                stream.append(seq * 0.02, rtp_packet(seq + 100_000 * index))
            seq += 1
        flusher.flush_all()
        print("flushed", seq, flush=True)
    for _ in range(10):  # appended but never flushed: lost by design
        for index, stream in enumerate(streams):
            stream.append(seq * 0.02, rtp_packet(seq + 100_000 * index))
        seq += 1
    print("ready", flush=True)
    sys.stdin.read()  # wait to be killed
    """
)


def test_sigkill_keeps_every_record_flushed_before_the_kill(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=repo,
    )
    assert child.stdout is not None
    flushed = 0
    for line in child.stdout:
        if line.startswith("flushed"):
            flushed = int(line.split()[1])
        if line.strip() == "ready":
            break
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    assert flushed == 1000

    (info,) = find_spools(tmp_path)
    assert info.call_key == "call-killed"
    assert info.closed is False
    assert [e.get("n") for e in read_journal(info.path)] == [None, *range(40)]
    for index in (0, 1):
        reader = read_stream(info.path / f"stream-{index}.rtp")
        expected = [(seq * 0.02, rtp_packet(seq + 100_000 * index)) for seq in range(flushed)]
        assert list(reader) == expected
        assert reader.truncated_bytes == 0
