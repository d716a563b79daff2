"""Sans-I/O SIP core (RFC 3261) for the SIPREC recording server.

* ``message``: parsing/serialising requests, responses, URIs, multipart bodies;
* ``framing``: cutting TCP/TLS byte streams into messages;
* ``transaction``: the transaction layer (server transactions, 2xx retransmission,
  client non-INVITE transactions) driven by ``now`` and an event queue;
* ``dialog``: UAS dialog state and in-dialog requests;
* ``_state``: the state tables behind the last two.
"""
