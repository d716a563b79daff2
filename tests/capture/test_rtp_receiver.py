"""The capture hot path: source latching, counting, spooling; and RTP port allocation."""

from __future__ import annotations

import socket

import pytest

from callvault.capture.rtp_receiver import PortPool, PortsExhausted, RtpReceiver


def test_rtp_is_latched_to_the_first_source_and_others_are_dropped_and_counted() -> None:
    got: list[tuple[float, bytes]] = []
    r = RtpReceiver(lambda t, p: got.append((t, p)))
    r.datagram_received(b"from-sbc-1", ("10.0.0.1", 4000))
    r.datagram_received(b"injected", ("10.6.6.6", 4000))
    r.datagram_received(b"other-port", ("10.0.0.1", 4002))
    r.datagram_received(b"from-sbc-2", ("10.0.0.1", 4000))
    assert [p for _, p in got] == [b"from-sbc-1", b"from-sbc-2"]
    assert (r.received, r.foreign) == (2, 2)
    assert got[0][0] <= got[1][0]


def test_unlatching_accepts_a_new_source_after_the_media_moved() -> None:
    got: list[bytes] = []
    r = RtpReceiver(lambda t, p: got.append(p))
    r.datagram_received(b"a", ("10.0.0.1", 4000))
    r.unlatch()
    r.datagram_received(b"b", ("10.0.0.9", 5000))
    r.datagram_received(b"c", ("10.0.0.1", 4000))
    assert got == [b"a", b"b"] and r.foreign == 1


def test_port_pool_hands_out_even_ports_skips_busy_ones_and_reuses_released() -> None:
    pool = PortPool(41000, 41007)
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 41002))
    try:
        socks = [pool.bind("127.0.0.1") for _ in range(3)]
        ports = [s.getsockname()[1] for s in socks]
        assert ports == [41000, 41004, 41006]
        with pytest.raises(PortsExhausted, match="no free RTP port in 41000-41007"):
            pool.bind("127.0.0.1")
        pool.release(41004)
        socks[1].close()
        again = pool.bind("127.0.0.1")
        assert again.getsockname()[1] == 41004
        for s in (socks[0], socks[2], again):
            s.close()
    finally:
        busy.close()
