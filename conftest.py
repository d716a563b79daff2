"""Loaded by pytest before Django starts: give the test run its own data directory."""

import os
import tempfile

os.environ["CALLVAULT_DATA_DIR"] = tempfile.mkdtemp(prefix="callvault-test-")
os.environ.setdefault("CALLVAULT_SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
