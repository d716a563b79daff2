"""Signals of the recordings app."""

from django.dispatch import Signal

# Sent (with ``call``) after a recording has been verified, stored and committed.
recording_ready = Signal()
