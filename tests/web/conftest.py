"""The role cast of tests/apps (admin, supervisor, member, outsider, auditor; teams; calls) for web tests."""

from tests.apps.conftest import _fast_password_hashing, cast  # noqa: F401
