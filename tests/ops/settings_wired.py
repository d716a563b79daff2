"""callvault.settings with the ops app wired in as the lead does it (idempotent: nothing is added
twice once the wiring has landed), for running real processes from the measurement script. The
URLconf is the ops routes alone, so that other areas being built in parallel cannot break it."""

from callvault.settings import *  # noqa: F403
from callvault.settings import INSTALLED_APPS, MIDDLEWARE

_OPS_APP = "callvault.apps.ops"
_OPS_MIDDLEWARE = "callvault.apps.ops.middleware.RequestMetricsMiddleware"
INSTALLED_APPS = [*[a for a in INSTALLED_APPS if a != _OPS_APP], _OPS_APP]
MIDDLEWARE = [_OPS_MIDDLEWARE, *[m for m in MIDDLEWARE if m != _OPS_MIDDLEWARE]]
ROOT_URLCONF = "tests.ops.urls"
