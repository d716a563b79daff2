"""UAS dialog state (RFC 3261 §12.1.1, §12.2): identity, CSeq bookkeeping, in-dialog requests.

A ``Dialog`` is created from the INVITE the UAS is about to answer and picks
the local tag (from an injectable random source).  It starts Early, becomes
Confirmed with the 2xx and Terminated with a failure response or a BYE; the
transitions are the ``DIALOG_TABLE`` in ``_state.py``.

* ``make_response`` answers requests inside the dialog (adds the To tag and
  the Contact) and drives the state from the INVITE's responses;
* ``receive_request`` applies the remote CSeq rule (§12.2.2: an in-dialog
  request with a lower CSeq gets 500), target refresh and BYE;
* ``create_request`` builds BYE/OPTIONS/... with the next local CSeq, the
  route set and the remote target (§12.2.1.1, loose and strict routing).
  The transaction layer adds the Via.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from callvault.sip._state import DIALOG_TABLE, DialogInput, DialogState
from callvault.sip.message import (
    Headers,
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    TokenSource,
    make_response,
    new_tag,
)

INITIAL_LOCAL_CSEQ: Final = 1  # §8.1.1.5: any value below 2**31 will do
DEFAULT_MAX_FORWARDS: Final = 70
TARGET_REFRESH_METHODS: Final = frozenset({"INVITE", "UPDATE"})  # §12.2 (RFC 3311 for UPDATE)
NOT_IN_DIALOG_SEQUENCE: Final = frozenset({"ACK", "CANCEL"})  # they reuse the INVITE's CSeq number
STATUS_OUT_OF_ORDER: Final = 500
STATUS_NO_DIALOG: Final = 481


@dataclass(frozen=True)
class DialogId:
    """§12: Call-ID, local tag and remote tag."""

    call_id: str
    local_tag: str
    remote_tag: str

    @classmethod
    def for_uas_request(cls, request: Request) -> DialogId:
        """The id of the dialog a request from the remote party belongs to (To tag is ours)."""
        return cls(request.call_id, request.to.tag or "", request.from_.tag or "")


class Dialog:
    """The UAS side of an INVITE dialog."""

    def __init__(
        self,
        *,
        call_id: str,
        local_party: NameAddr,
        remote_party: NameAddr,
        remote_target: SipUri,
        route_set: Iterable[NameAddr] = (),
        remote_cseq: int | None = None,
        local_cseq: int | None = None,
        contact: str | None = None,
        secure: bool = False,
        invite_cseq: int | None = None,
        now: float = 0.0,
    ) -> None:
        if not local_party.tag:
            raise ValueError("the local party of a UAS dialog needs a tag")
        self.call_id = call_id
        self.local_party = local_party
        self.remote_party = remote_party
        self.remote_target = remote_target
        self.route_set = list(route_set)
        self.remote_cseq = remote_cseq
        self.local_cseq = local_cseq
        self.contact = contact
        self.secure = secure
        self.invite_cseq = invite_cseq
        self.state = DialogState.EARLY
        self.ack_received = False
        self.updated_at = now

    @classmethod
    def create_uas(
        cls,
        invite: Request,
        *,
        contact: str | None = None,
        local_tag: str | None = None,
        token: TokenSource = secrets.token_hex,
        now: float = 0.0,
    ) -> Dialog:
        """§12.1.1: the dialog the UAS forms by answering ``invite``.

        ``contact`` is our Contact header value (put in 1xx/2xx to the INVITE).
        Raises SipParseError if the INVITE cannot form a dialog (no Contact).
        """
        if invite.method != "INVITE":
            raise ValueError(f"a UAS dialog is created by INVITE, not {invite.method}")
        to = invite.to
        if to.tag is not None:
            raise ValueError("the INVITE already has a To tag: it belongs to an existing dialog")
        remote_contact = invite.contact
        if remote_contact is None:
            raise SipParseError("INVITE without Contact cannot create a dialog")
        local_party = replace(to, params={**to.params, "tag": local_tag or new_tag(token)})
        number = invite.cseq[0]
        return cls(
            call_id=invite.call_id,
            local_party=local_party,
            remote_party=invite.from_,
            remote_target=remote_contact.uri,
            route_set=invite.record_route,  # UAS keeps Record-Route order (§12.1.1)
            remote_cseq=number,
            contact=contact,
            secure=invite.request_uri.scheme == "sips",
            invite_cseq=number,
            now=now,
        )

    # ------------------------------------------------------------------ identity

    @property
    def local_tag(self) -> str:
        return self.local_party.tag or ""

    @property
    def remote_tag(self) -> str:
        return self.remote_party.tag or ""

    @property
    def id(self) -> DialogId:
        return DialogId(self.call_id, self.local_tag, self.remote_tag)

    @property
    def next_hop(self) -> SipUri:
        """Where in-dialog requests go: the first route, else the remote target (§12.2.1.1)."""
        return self.route_set[0].uri if self.route_set else self.remote_target

    def matches(self, request: Request) -> bool:
        return DialogId.for_uas_request(request) == self.id

    # ------------------------------------------------------------------ state machine

    def _apply(self, event: DialogInput) -> None:
        next_state = DIALOG_TABLE[self.state].get(event)
        if next_state is None:
            raise ValueError(f"cannot {event.value} in dialog state {self.state.value}")
        self.state = next_state

    @property
    def is_terminated(self) -> bool:
        return self.state is DialogState.TERMINATED

    # ------------------------------------------------------------------ UAS side

    def make_response(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        """A response carrying our To tag; responses to the INVITE also drive the dialog state."""
        extra = list(headers)
        forms_dialog = request.method == "INVITE" and 100 < status < 300
        if forms_dialog and self.contact is not None and not any(n.lower() == "contact" for n, _ in extra):
            extra.append(("Contact", self.contact))  # §12.1.1, §13.3.1.4
        if request.method == "INVITE" and status > 100:
            if status < 200:
                self._apply(DialogInput.SEND_1XX)
            elif status < 300:
                self._apply(DialogInput.SEND_2XX)
            else:
                self._apply(DialogInput.SEND_FAILURE)
        return make_response(
            request,
            status,
            reason,
            to_tag=self.local_tag,
            headers=extra,
            body=body,
            content_type=content_type,
        )

    def receive_request(self, request: Request, now: float) -> int | None:
        """Apply §12.2.2 to an in-dialog request from the remote party.

        Returns the status the TU must answer with instead of processing the
        request (481: not this dialog or terminated, 500: CSeq out of order),
        or None when the request is acceptable.  BYE terminates the dialog.
        """
        if not self.matches(request):
            return STATUS_NO_DIALOG
        number, method = request.cseq
        if request.method == "ACK":
            if number == self.invite_cseq:
                self.ack_received = True
            self.updated_at = now
            return None
        if request.method in NOT_IN_DIALOG_SEQUENCE:
            return None
        if self.state is DialogState.TERMINATED:
            return STATUS_NO_DIALOG
        if self.remote_cseq is not None and number < self.remote_cseq:
            return STATUS_OUT_OF_ORDER
        self.remote_cseq = number
        self.updated_at = now
        if method in TARGET_REFRESH_METHODS:
            contact = request.contact
            if contact is not None:
                self.remote_target = contact.uri
            if method == "INVITE":
                self.invite_cseq = number
                self.ack_received = False
        if method == "BYE":
            self._apply(DialogInput.RECEIVE_BYE)
        return None

    # ------------------------------------------------------------------ UAC side (in-dialog)

    def create_request(self, method: str, now: float) -> Request:
        """§12.2.1.1: a request inside the dialog with the next local CSeq; no Via yet."""
        if method in NOT_IN_DIALOG_SEQUENCE:
            raise ValueError(f"{method} is not built with create_request")
        if method == "BYE":
            self._apply(DialogInput.SEND_BYE)
        elif self.state is not DialogState.CONFIRMED:
            raise ValueError(f"cannot send {method} in dialog state {self.state.value}")
        self.local_cseq = INITIAL_LOCAL_CSEQ if self.local_cseq is None else self.local_cseq + 1
        self.updated_at = now
        request_uri, routes = self._target_and_routes()
        headers = Headers()
        for route in routes:
            headers.add("Route", route)
        headers.add("Max-Forwards", str(DEFAULT_MAX_FORWARDS))
        headers.add("From", str(self.local_party))
        headers.add("To", str(self.remote_party))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.local_cseq} {method}")
        if method in TARGET_REFRESH_METHODS and self.contact is not None:
            headers.add("Contact", self.contact)
        return Request(method, request_uri, headers)

    def _target_and_routes(self) -> tuple[str, list[str]]:
        if not self.route_set:
            return str(self.remote_target), []
        if "lr" in self.route_set[0].uri.params:  # loose routing
            return str(self.remote_target), [str(route) for route in self.route_set]
        # strict routing: the first route becomes the Request-URI, the remote target the last Route
        first, rest = self.route_set[0], self.route_set[1:]
        uri = replace(first.uri, params={k: v for k, v in first.uri.params.items() if k != "method"})
        return str(uri), [*(str(route) for route in rest), f"<{self.remote_target}>"]
