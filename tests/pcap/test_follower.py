"""The SIP dialog follower: calls, channels, re-INVITEs, port reuse, what is not recorded."""

from __future__ import annotations

from callvault.pcap.build import ethernet, ipv4, udp
from callvault.pcap.follower import capture_loss
from tests.pcap.traffic import Dialog, Traffic, follow, sdp

A_MEDIA = ("192.0.2.10", 40000)
B_MEDIA = ("192.0.2.20", 50000)


def basic_call(t: Traffic, d: Dialog, *, start: float = 100.0, talk: int = 50) -> None:
    t.sip(start, d.a, d.b, d.invite(sdp(*A_MEDIA)))
    t.sip(start + 0.01, d.b, d.a, d.response(100))
    t.sip(start + 0.5, d.b, d.a, d.response(180))
    t.sip(start + 2.0, d.b, d.a, d.response(200, sdp(*B_MEDIA)))
    t.sip(start + 2.01, d.a, d.b, d.request("ACK", cseq=1))
    t.rtp(start + 2.05, A_MEDIA, B_MEDIA, talk, ssrc=0xA, fill=0x11)
    t.rtp(start + 2.06, B_MEDIA, A_MEDIA, talk, ssrc=0xB, fill=0x22)
    t.sip(start + 2.1 + talk * 0.02, d.a, d.b, d.request("BYE"))
    t.sip(start + 2.11 + talk * 0.02, d.b, d.a, d.response(200, method="BYE", cseq=d.cseq["a"]))


def test_it_follows_a_call_and_puts_each_partys_voice_on_its_own_channel() -> None:
    t, d = Traffic(), Dialog(pai="<sip:+81312345678@pbx.example.jp>")
    basic_call(t, d)
    f = follow(t.sorted())
    [started] = f.calls()
    rec = started.record
    assert rec["source"] == "capture" and rec["sip_call_id"] == d.call_id
    caller, callee = rec["participants"]
    assert (caller["role"], caller["number"], caller["name"]) == ("caller", "+81312345678", "山田 太郎")
    assert (callee["role"], callee["number"]) == ("callee", "201")
    assert rec["direction"] == "in"
    [answered] = f.answered()
    assert answered.record["t"] == 102.0
    [ended] = f.ended()
    assert ended.record["reason"] == "bye" and abs(ended.record["t"] - 103.1) < 1e-6
    left, right = f.packets[started.call.call_id]
    assert len(left) == 50 and len(right) == 50
    assert all(p[12] == 0x11 for _, p in left), "packets sent to the callee are the caller's voice"
    assert all(p[12] == 0x22 for _, p in right)
    streams = {s["index"]: s for s in f.updates()[-1].record["streams"]}
    assert streams[0]["role"] == "caller" and streams[0]["codec"] == "PCMA"
    assert streams[0]["remote"] == "192.0.2.20" and streams[0]["local_port"] == 50000
    assert streams[1]["role"] == "callee" and streams[1]["local_port"] == 40000


def test_the_call_id_is_the_same_when_the_same_traffic_is_followed_again() -> None:
    t = Traffic()
    basic_call(t, Dialog())
    first = follow(t.sorted()).calls()[0].call.call_id
    again = follow(t.sorted()).calls()[0].call.call_id
    other = Traffic()
    basic_call(other, Dialog(), start=500.0)
    assert first == again != follow(other.sorted()).calls()[0].call.call_id


def test_it_records_a_cancelled_call_as_missed_without_audio() -> None:
    t, d = Traffic(), Dialog()
    t.sip(1.0, d.a, d.b, d.invite(sdp(*A_MEDIA)))
    t.sip(1.2, d.b, d.a, d.response(183, sdp(*B_MEDIA)))
    t.rtp(1.3, B_MEDIA, A_MEDIA, 20)  # ringback as early media: not part of the recording
    t.sip(2.0, d.a, d.b, d.request("CANCEL", cseq=1))
    t.sip(2.01, d.b, d.a, d.response(200, method="CANCEL"))
    t.sip(2.02, d.b, d.a, d.response(487))
    f = follow(t.sorted())
    assert not f.answered()
    [ended] = f.ended()
    assert ended.record == {"type": "ended", "t": 2.02, "reason": "cancel", "sip_status": 487}
    assert f.core.stats["rtp_early"] == 20
    assert all(not p for p in f.packets[f.calls()[0].call.call_id])


def test_busy_and_other_final_responses_end_the_call_unanswered() -> None:
    t, d = Traffic(), Dialog()
    t.sip(1.0, d.a, d.b, d.invite(sdp(*A_MEDIA)))
    t.sip(1.5, d.b, d.a, d.response(486))
    [ended] = follow(t.sorted()).ended()
    assert ended.record["reason"] == "busy" and ended.record["sip_status"] == 486


def test_an_authentication_retry_stays_one_call() -> None:
    t, d = Traffic(), Dialog()
    t.sip(1.0, d.a, d.b, d.invite(sdp(*A_MEDIA), cseq=1))
    t.sip(1.01, d.b, d.a, d.response(407, cseq=1))
    t.sip(1.02, d.a, d.b, d.request("ACK", cseq=1))
    t.sip(1.05, d.a, d.b, d.invite(sdp(*A_MEDIA), cseq=2))
    t.sip(2.0, d.b, d.a, d.response(200, sdp(*B_MEDIA), cseq=2))
    t.rtp(2.05, A_MEDIA, B_MEDIA, 10)
    t.sip(3.0, d.a, d.b, d.request("BYE", cseq=3))
    f = follow(t.sorted())
    assert len(f.calls()) == 1 and len(f.answered()) == 1
    assert f.ended()[0].record["reason"] == "bye"
    assert len(f.packets[f.calls()[0].call.call_id][0]) == 10


def test_rtp_after_the_dialog_ended_is_not_recorded() -> None:
    t, d = Traffic(), Dialog()
    basic_call(t, d, talk=50)
    t.rtp(103.5, A_MEDIA, B_MEDIA, 25, seq=5000)  # a phone that keeps sending after BYE
    f = follow(t.sorted())
    left, _ = f.packets[f.calls()[0].call.call_id]
    assert len(left) == 50 and f.core.stats["rtp_after_end"] == 25


def test_a_reinvite_that_moves_media_is_followed_and_hold_is_journalled() -> None:
    t, d = Traffic(), Dialog()
    moved = ("192.0.2.30", 41000)
    t.sip(1.0, d.a, d.b, d.invite(sdp(*A_MEDIA)))
    t.sip(1.5, d.b, d.a, d.response(200, sdp(*B_MEDIA)))
    t.sip(1.51, d.a, d.b, d.request("ACK", cseq=1))
    t.rtp(1.6, B_MEDIA, A_MEDIA, 10, fill=0x22)
    # callee puts the caller on hold
    t.sip(2.0, d.b, d.a, d.request("INVITE", sdp(*B_MEDIA, direction="sendonly"), from_a=False))
    t.sip(2.01, d.a, d.b, d.response(200, sdp(*A_MEDIA, direction="recvonly"), from_a=False, cseq=101))
    # caller's media moves (e.g. the PBX hands over to another device) when resuming
    t.sip(5.0, d.b, d.a, d.request("INVITE", sdp(*B_MEDIA), from_a=False))
    t.sip(5.01, d.a, d.b, d.response(200, sdp(*moved), from_a=False, cseq=102))
    t.rtp(5.1, B_MEDIA, moved, 10, fill=0x33, seq=3000, ssrc=0xB)
    t.sip(6.0, d.a, d.b, d.request("BYE"))
    f = follow(t.sorted())
    holds = [u.record["hold"] for u in f.updates()]
    assert True in holds and holds[-1] is False
    _, right = f.packets[f.calls()[0].call.call_id]
    assert [p[12] for _, p in right] == [0x22] * 10 + [0x33] * 10
    assert next(s for s in f.updates()[-1].record["streams"] if s["index"] == 1)["remote"] == "192.0.2.30"


def test_a_port_reused_by_a_newer_call_belongs_to_the_newer_call() -> None:
    t = Traffic()
    first, second = Dialog(call_id="one@pbx", from_tag="x1"), Dialog(call_id="two@pbx", from_tag="x2")
    t.sip(1.0, first.a, first.b, first.invite(sdp(*A_MEDIA)))
    t.sip(1.1, first.b, first.a, first.response(200, sdp(*B_MEDIA)))
    t.rtp(1.2, A_MEDIA, B_MEDIA, 10, fill=0x11)
    # the first call's BYE was never captured; a second call reuses both media addresses
    t.sip(3.0, second.a, second.b, second.invite(sdp(*A_MEDIA)))
    t.sip(3.1, second.b, second.a, second.response(200, sdp(*B_MEDIA)))
    t.rtp(3.2, A_MEDIA, B_MEDIA, 10, fill=0x44, ssrc=0x99)
    f = follow(t.sorted())
    one, two = (c.call.call_id for c in f.calls())
    assert [p[12] for _, p in f.packets[one][0]] == [0x11] * 10
    assert [p[12] for _, p in f.packets[two][0]] == [0x44] * 10


def test_garbage_and_foreign_sources_on_an_rtp_port_are_not_recorded() -> None:
    t, d = Traffic(), Dialog()
    t.sip(1.0, d.a, d.b, d.invite(sdp(*A_MEDIA)))
    t.sip(1.1, d.b, d.a, d.response(200, sdp(*B_MEDIA)))
    t.udp(1.15, ("198.51.100.9", 9999), B_MEDIA, b"\x00garbage that is not RTP")
    t.rtp(1.2, A_MEDIA, B_MEDIA, 20)
    t.rtp(1.25, ("198.51.100.9", 7777), B_MEDIA, 5, ssrc=0x666, fill=0x66)  # injected while A talks
    t.sip(2.0, d.a, d.b, d.request("BYE"))
    f = follow(t.sorted())
    left, _ = f.packets[f.calls()[0].call.call_id]
    assert len(left) == 20 and all(p[12] == 0x55 for _, p in left)
    assert f.core.stats["rtp_garbage"] == 1 and f.core.stats["rtp_foreign"] == 5


def test_an_ssrc_change_is_recorded_on_the_same_channel() -> None:
    t, d = Traffic(), Dialog()
    t.sip(1.0, d.a, d.b, d.invite(sdp(*A_MEDIA)))
    t.sip(1.1, d.b, d.a, d.response(200, sdp(*B_MEDIA)))
    t.rtp(1.2, A_MEDIA, B_MEDIA, 10, ssrc=1)
    t.rtp(1.4, A_MEDIA, B_MEDIA, 10, ssrc=2, seq=40000, rtp_ts=999999)
    t.sip(2.0, d.a, d.b, d.request("BYE"))
    f = follow(t.sorted())
    left, _ = f.packets[f.calls()[0].call.call_id]
    assert [int.from_bytes(p[8:12], "big") for _, p in left] == [1] * 10 + [2] * 10


def test_a_source_silent_for_a_second_may_be_replaced_by_a_new_one() -> None:
    t, d = Traffic(), Dialog()
    t.sip(1.0, d.a, d.b, d.invite(sdp(*A_MEDIA)))
    t.sip(1.1, d.b, d.a, d.response(200, sdp(*B_MEDIA)))
    t.rtp(1.2, A_MEDIA, B_MEDIA, 10)
    t.rtp(3.0, ("192.0.2.11", 40002), B_MEDIA, 10, ssrc=7)  # an SBC switched its source port
    t.sip(4.0, d.a, d.b, d.request("BYE"))
    f = follow(t.sorted())
    assert len(f.packets[f.calls()[0].call.call_id][0]) == 20


def test_g729_and_t38_keep_the_call_and_mark_the_stream_unsupported() -> None:
    t, d = Traffic(), Dialog()
    t.sip(1.0, d.a, d.b, d.invite(sdp(*A_MEDIA, codecs="18")))
    t.sip(1.1, d.b, d.a, d.response(200, sdp(*B_MEDIA, codecs="18")))
    t.rtp(1.2, A_MEDIA, B_MEDIA, 5, pt=18)
    t.sip(2.0, d.a, d.b, d.request("INVITE", sdp(A_MEDIA[0], 40010, media="image")))
    t.sip(2.1, d.b, d.a, d.response(200, sdp(B_MEDIA[0], 50010, media="image"), cseq=2))
    t.sip(9.0, d.a, d.b, d.request("BYE"))
    f = follow(t.sorted())
    first = {s["index"]: s for s in f.updates()[0].record["streams"]}
    assert first[0]["codec"] == "G729" and first[0]["unsupported"] is True
    last = {s["index"]: s for s in f.updates()[-1].record["streams"]}
    assert last[0]["codec"] == "T.38" and last[0]["unsupported"] is True
    assert f.ended()[0].record["reason"] == "bye"
    assert len(f.packets[f.calls()[0].call.call_id][0]) == 5


def test_a_call_without_bye_ends_after_the_rtp_timeout_in_packet_time() -> None:
    t, d = Traffic(), Dialog()
    t.sip(1.0, d.a, d.b, d.invite(sdp(*A_MEDIA)))
    t.sip(1.1, d.b, d.a, d.response(200, sdp(*B_MEDIA)))
    t.rtp(1.2, A_MEDIA, B_MEDIA, 10)
    t.udp(100.0, ("10.0.0.1", 1), ("10.0.0.2", 2), b"later traffic moves packet time on")
    f = follow(t.sorted(), finish=False, rtp_timeout=30.0)
    [ended] = f.ended()
    assert ended.record["reason"] == "rtp_timeout" and abs(ended.record["t"] - 1.38) < 1e-6


def test_sip_over_tcp_is_reassembled_out_of_order_with_retransmissions() -> None:
    t, d = Traffic(), Dialog(transport="TCP")
    invite = d.invite(sdp(*A_MEDIA))
    ok = d.response(200, sdp(*B_MEDIA))
    seq = 1000
    t.tcp(0.9, d.a, d.b, seq - 1, b"", flags=0x02)  # SYN
    pieces = [invite[i : i + 7] for i in range(0, len(invite), 7)]
    offsets = []
    pos = seq
    for p in pieces:
        offsets.append(pos)
        pos += len(p)
    order = list(range(len(pieces)))
    order[1], order[2] = order[2], order[1]  # out of order
    for n, i in enumerate(order):
        t.tcp(1.0 + n * 1e-4, d.a, d.b, offsets[i], pieces[i])
    t.tcp(1.05, d.a, d.b, offsets[3], pieces[3])  # a retransmission
    t.tcp(1.5, d.b, d.a, 7000, ok)
    t.tcp(1.6, d.a, d.b, pos, d.request("ACK", cseq=1))
    t.rtp(1.7, A_MEDIA, B_MEDIA, 10)
    bye = d.request("BYE")
    t.tcp(3.0, d.a, d.b, pos + len(d.request("ACK", cseq=1)), bye)
    f = follow(t.sorted())
    assert len(f.calls()) == 1 and f.calls()[0].record["transport"] == "TCP"
    assert f.ended()[0].record["reason"] == "bye"
    assert len(f.packets[f.calls()[0].call.call_id][0]) == 10
    assert f.core.tcp.retransmitted >= 1


def test_sip_in_fragmented_ipv4_datagrams_is_reassembled() -> None:
    t, d = Traffic(), Dialog()
    padding = "a=x-padding:" + "0" * 1800 + "\r\n"
    invite = d.invite(sdp(*A_MEDIA) + padding)
    payload = udp(d.a[1], d.b[1], invite)
    first, second = payload[:1480], payload[1480:]
    t.add(1.0, ethernet(ipv4(d.a[0], d.b[0], 17, second, ident=77, frag=1480 // 8)))  # last fragment first
    t.add(1.0001, ethernet(ipv4(d.a[0], d.b[0], 17, first, ident=77, frag=0x2000)))
    t.sip(1.5, d.b, d.a, d.response(200, sdp(*B_MEDIA)))
    f = follow(t.records)
    assert len(f.calls()) == 1 and f.core.net.defrag.reassembled == 1


def test_non_sip_traffic_is_counted_and_ignored() -> None:
    t = Traffic()
    t.udp(1.0, ("10.0.0.1", 53), ("10.0.0.2", 5353), b"\x12\x34 dns-ish")
    t.udp(1.1, ("10.0.0.1", 5060), ("10.0.0.2", 5060), b"INVITE but not really SIP\r\n\r\n")
    t.tcp(1.2, ("10.0.0.1", 443), ("10.0.0.2", 5555), 1, b"\x16\x03\x01 tls")
    f = follow(t.records)
    assert not f.calls()
    assert (
        f.core.stats["other_udp"] == 1 and f.core.stats["sip_errors"] == 1 and f.core.stats["other_tcp"] == 1
    )


def test_capture_loss_is_bounded_by_the_drops_the_capture_reported() -> None:
    assert capture_loss(5, 0) == 0
    assert capture_loss(5, 3) == 3
    assert capture_loss(5, 100) == 5


def test_reported_drops_go_to_calls_alive_at_that_time() -> None:
    t, d = Traffic(), Dialog()
    basic_call(t, d, start=100.0)
    f = follow(t.sorted())
    call = f.calls()[0].call
    f.core.report_drops(4, 0.0, 50.0)  # before the call
    assert call.capture_drops == 0
    f.core.report_drops(4, 101.0, 102.0)
    assert call.capture_drops == 4


def test_padding_and_fcs_after_the_datagram_are_not_recorded() -> None:
    """A mirror port may keep the 4-byte FCS on every frame, and Ethernet pads short frames to 60
    bytes: the packets recorded end where the IP total length says, on the fast path as on the
    first (slow path) packet; a datagram too short for RTP is counted, not recorded."""
    t, d = Traffic(), Dialog()
    basic_call(t, d, talk=5)
    t.records = [(ts, lt, frame + b"\xde\xad\xbe\xef") for ts, lt, frame in t.records]  # an FCS
    short = ethernet(ipv4(A_MEDIA[0], B_MEDIA[0], 17, udp(A_MEDIA[1], B_MEDIA[1], b"\x80\x08\x00\x01")))
    t.add(102.08, short + b"\x00" * (60 - len(short)))  # 4 bytes of UDP payload, padded to 60
    f = follow(t.sorted())
    [started] = f.calls()
    left, right = f.packets[started.call.call_id]
    assert len(left) == 5 and len(right) == 5
    assert {len(p) for _, p in left + right} == {12 + 160}
    assert f.core.stats["rtp_garbage"] == 1
