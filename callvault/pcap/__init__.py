"""Passive capture cores (sans-I/O): pcap/pcapng files, link/IP/UDP/TCP layers, SIP dialog following.

``reader``   pcap and pcapng records from bytes (both byte orders, ns timestamps, many interfaces)
``net``      Ethernet/VLAN/SLL/SLL2/raw/NULL, IPv4/IPv6 (extension headers), fragment and TCP reassembly
``follower`` SIP dialogs over UDP/TCP, SDP offer/answer, RTP routed to the two channels of each call

The asyncio/libpcap adapters that write spools live in :mod:`callvault.capture.passive`.
"""
