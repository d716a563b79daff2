"""State machine tables of the SIP core, in one place (in the spirit of h11's ``_state.py``).

Every machine is data: ``TABLE[state][input] -> Transition(next_state, action)``.
A pair missing from a table means the input is not valid in that state; the
code driving the machine decides whether that is ignored (network input) or
refused (a call by the transaction user).  ``STATE_TIMERS`` lists the timers
that run while a transaction is in a state: entering the state starts those
not yet running and cancels the others.

Machines:

* server INVITE transaction, RFC 3261 §17.2.1 with the RFC 6026 "Accepted"
  state, which also carries the UAS core's 2xx retransmission (§13.3.1.4);
* server non-INVITE transaction, §17.2.2;
* client non-INVITE transaction, §17.1.2;
* UAS dialog, §12 (Early, Confirmed, Terminated).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class TxnKind(enum.Enum):
    SERVER_INVITE = "server-invite"
    SERVER_NON_INVITE = "server-non-invite"
    CLIENT_NON_INVITE = "client-non-invite"


class TxnState(enum.Enum):
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class TxnInput(enum.Enum):
    # from the transaction user
    SEND_1XX = "send 1xx"
    SEND_2XX = "send 2xx"
    SEND_FINAL = "send 300-699"  # for non-INVITE server transactions: any 200-699
    # from the network
    REQUEST_RETRANSMISSION = "request retransmission"
    ACK = "ACK for a non-2xx final response"
    ACK_2XX = "ACK for a 2xx response"
    RECEIVE_1XX = "receive 1xx"
    RECEIVE_FINAL = "receive 200-699"
    # timers
    TIMER_TRYING = "timer 100 Trying"
    TIMER_2XX = "timer 2xx retransmission"
    TIMER_E = "timer E"
    TIMER_F = "timer F"
    TIMER_G = "timer G"
    TIMER_H = "timer H"
    TIMER_I = "timer I"
    TIMER_J = "timer J"
    TIMER_K = "timer K"
    TIMER_L = "timer L"


class Timer(enum.Enum):
    TRYING = "100 Trying delay"  # §17.2.1: 100 unless the TU answers within 200 ms
    RETRANSMIT_2XX = "2xx retransmission"  # §13.3.1.4, T1 doubling up to T2
    E = "E"  # non-INVITE request retransmission, T1 doubling up to T2 (unreliable only)
    F = "F"  # non-INVITE client timeout, 64*T1
    G = "G"  # INVITE final response retransmission, T1 doubling up to T2 (unreliable only)
    H = "H"  # wait for ACK, 64*T1
    I = "I"  # noqa: E741 - RFC name; absorb ACK retransmissions, T4 (0 on reliable)
    J = "J"  # absorb non-INVITE request retransmissions, 64*T1 (0 on reliable)
    K = "K"  # absorb response retransmissions, T4 (0 on reliable)
    L = "L"  # RFC 6026 Accepted state lifetime, 64*T1


TIMER_INPUTS: Final[dict[Timer, TxnInput]] = {
    Timer.TRYING: TxnInput.TIMER_TRYING,
    Timer.RETRANSMIT_2XX: TxnInput.TIMER_2XX,
    Timer.E: TxnInput.TIMER_E,
    Timer.F: TxnInput.TIMER_F,
    Timer.G: TxnInput.TIMER_G,
    Timer.H: TxnInput.TIMER_H,
    Timer.I: TxnInput.TIMER_I,
    Timer.J: TxnInput.TIMER_J,
    Timer.K: TxnInput.TIMER_K,
    Timer.L: TxnInput.TIMER_L,
}


class Action(enum.Enum):
    SEND_RESPONSE = "send the TU's response and remember it"
    SEND_TRYING = "send 100 Trying if nothing was sent yet"
    RESEND_RESPONSE = "resend the last response"
    RESEND_REQUEST = "resend the request"
    ABSORB = "absorb"
    DELIVER_RESPONSE = "pass the response to the TU"
    DELIVER_ACK = "pass the ACK to the TU and stop 2xx retransmissions"
    TIMEOUT = "report a transaction timeout"
    END_ACCEPTED = "report an ACK timeout if the 2xx was never acknowledged"
    NONE = "nothing"


@dataclass(frozen=True)
class Transition:
    next_state: TxnState
    action: Action


_S = TxnState
_I = TxnInput
_A = Action
_T = Transition

SERVER_INVITE_TABLE: Final[dict[TxnState, dict[TxnInput, Transition]]] = {
    _S.PROCEEDING: {
        _I.SEND_1XX: _T(_S.PROCEEDING, _A.SEND_RESPONSE),
        _I.SEND_2XX: _T(_S.ACCEPTED, _A.SEND_RESPONSE),
        _I.SEND_FINAL: _T(_S.COMPLETED, _A.SEND_RESPONSE),
        _I.REQUEST_RETRANSMISSION: _T(_S.PROCEEDING, _A.RESEND_RESPONSE),
        _I.TIMER_TRYING: _T(_S.PROCEEDING, _A.SEND_TRYING),
    },
    _S.COMPLETED: {
        _I.REQUEST_RETRANSMISSION: _T(_S.COMPLETED, _A.RESEND_RESPONSE),
        _I.TIMER_G: _T(_S.COMPLETED, _A.RESEND_RESPONSE),
        _I.ACK: _T(_S.CONFIRMED, _A.ABSORB),
        _I.TIMER_H: _T(_S.TERMINATED, _A.TIMEOUT),
    },
    _S.CONFIRMED: {
        _I.REQUEST_RETRANSMISSION: _T(_S.CONFIRMED, _A.ABSORB),
        _I.ACK: _T(_S.CONFIRMED, _A.ABSORB),
        _I.TIMER_I: _T(_S.TERMINATED, _A.NONE),
    },
    # RFC 6026 §8.4-8.7: INVITE retransmissions are absorbed, TU 2xx retransmissions
    # go out, ACKs go to the TU.  The §13.3.1.4 retransmission timer lives here too.
    _S.ACCEPTED: {
        _I.SEND_2XX: _T(_S.ACCEPTED, _A.SEND_RESPONSE),
        _I.REQUEST_RETRANSMISSION: _T(_S.ACCEPTED, _A.ABSORB),
        _I.TIMER_2XX: _T(_S.ACCEPTED, _A.RESEND_RESPONSE),
        _I.ACK_2XX: _T(_S.ACCEPTED, _A.DELIVER_ACK),
        _I.TIMER_L: _T(_S.TERMINATED, _A.END_ACCEPTED),
    },
    _S.TERMINATED: {},
}

SERVER_NON_INVITE_TABLE: Final[dict[TxnState, dict[TxnInput, Transition]]] = {
    _S.TRYING: {
        _I.SEND_1XX: _T(_S.PROCEEDING, _A.SEND_RESPONSE),
        _I.SEND_FINAL: _T(_S.COMPLETED, _A.SEND_RESPONSE),
        _I.REQUEST_RETRANSMISSION: _T(_S.TRYING, _A.ABSORB),
    },
    _S.PROCEEDING: {
        _I.SEND_1XX: _T(_S.PROCEEDING, _A.SEND_RESPONSE),
        _I.SEND_FINAL: _T(_S.COMPLETED, _A.SEND_RESPONSE),
        _I.REQUEST_RETRANSMISSION: _T(_S.PROCEEDING, _A.RESEND_RESPONSE),
    },
    _S.COMPLETED: {
        _I.REQUEST_RETRANSMISSION: _T(_S.COMPLETED, _A.RESEND_RESPONSE),
        _I.TIMER_J: _T(_S.TERMINATED, _A.NONE),
    },
    _S.TERMINATED: {},
}

CLIENT_NON_INVITE_TABLE: Final[dict[TxnState, dict[TxnInput, Transition]]] = {
    _S.TRYING: {
        _I.TIMER_E: _T(_S.TRYING, _A.RESEND_REQUEST),
        _I.TIMER_F: _T(_S.TERMINATED, _A.TIMEOUT),
        _I.RECEIVE_1XX: _T(_S.PROCEEDING, _A.DELIVER_RESPONSE),
        _I.RECEIVE_FINAL: _T(_S.COMPLETED, _A.DELIVER_RESPONSE),
    },
    _S.PROCEEDING: {
        _I.TIMER_E: _T(_S.PROCEEDING, _A.RESEND_REQUEST),
        _I.TIMER_F: _T(_S.TERMINATED, _A.TIMEOUT),
        _I.RECEIVE_1XX: _T(_S.PROCEEDING, _A.DELIVER_RESPONSE),
        _I.RECEIVE_FINAL: _T(_S.COMPLETED, _A.DELIVER_RESPONSE),
    },
    _S.COMPLETED: {
        _I.RECEIVE_1XX: _T(_S.COMPLETED, _A.ABSORB),
        _I.RECEIVE_FINAL: _T(_S.COMPLETED, _A.ABSORB),
        _I.TIMER_K: _T(_S.TERMINATED, _A.NONE),
    },
    _S.TERMINATED: {},
}

TXN_TABLES: Final[dict[TxnKind, dict[TxnState, dict[TxnInput, Transition]]]] = {
    TxnKind.SERVER_INVITE: SERVER_INVITE_TABLE,
    TxnKind.SERVER_NON_INVITE: SERVER_NON_INVITE_TABLE,
    TxnKind.CLIENT_NON_INVITE: CLIENT_NON_INVITE_TABLE,
}

INITIAL_STATES: Final[dict[TxnKind, TxnState]] = {
    TxnKind.SERVER_INVITE: TxnState.PROCEEDING,
    TxnKind.SERVER_NON_INVITE: TxnState.TRYING,
    TxnKind.CLIENT_NON_INVITE: TxnState.TRYING,
}

STATE_TIMERS: Final[dict[tuple[TxnKind, TxnState], frozenset[Timer]]] = {
    (TxnKind.SERVER_INVITE, _S.PROCEEDING): frozenset({Timer.TRYING}),
    (TxnKind.SERVER_INVITE, _S.COMPLETED): frozenset({Timer.G, Timer.H}),
    (TxnKind.SERVER_INVITE, _S.CONFIRMED): frozenset({Timer.I}),
    (TxnKind.SERVER_INVITE, _S.ACCEPTED): frozenset({Timer.RETRANSMIT_2XX, Timer.L}),
    (TxnKind.SERVER_NON_INVITE, _S.COMPLETED): frozenset({Timer.J}),
    (TxnKind.CLIENT_NON_INVITE, _S.TRYING): frozenset({Timer.E, Timer.F}),
    (TxnKind.CLIENT_NON_INVITE, _S.PROCEEDING): frozenset({Timer.E, Timer.F}),
    (TxnKind.CLIENT_NON_INVITE, _S.COMPLETED): frozenset({Timer.K}),
}


# --------------------------------------------------------------------------- dialogs


class DialogState(enum.Enum):
    EARLY = "Early"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class DialogInput(enum.Enum):
    SEND_1XX = "send 1xx to INVITE"
    SEND_2XX = "send 2xx to INVITE"
    SEND_FAILURE = "send 300-699 to INVITE"
    RECEIVE_BYE = "receive BYE"
    SEND_BYE = "send BYE"


DIALOG_TABLE: Final[dict[DialogState, dict[DialogInput, DialogState]]] = {
    DialogState.EARLY: {
        DialogInput.SEND_1XX: DialogState.EARLY,
        DialogInput.SEND_2XX: DialogState.CONFIRMED,
        DialogInput.SEND_FAILURE: DialogState.TERMINATED,
        # §15: the caller may send BYE on an early dialog; the callee may not.
        DialogInput.RECEIVE_BYE: DialogState.TERMINATED,
    },
    DialogState.CONFIRMED: {
        # responses to re-INVITEs: a failed re-INVITE leaves the dialog alone (§14.1)
        DialogInput.SEND_1XX: DialogState.CONFIRMED,
        DialogInput.SEND_2XX: DialogState.CONFIRMED,
        DialogInput.SEND_FAILURE: DialogState.CONFIRMED,
        DialogInput.RECEIVE_BYE: DialogState.TERMINATED,
        DialogInput.SEND_BYE: DialogState.TERMINATED,
    },
    DialogState.TERMINATED: {
        DialogInput.RECEIVE_BYE: DialogState.TERMINATED,
    },
}
