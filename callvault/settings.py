"""The one settings module of callvault, driven by environment variables.

Embedded default: SQLite (WAL) and local files under ``CALLVAULT_DATA_DIR``;
jobs in a SQLite-backed queue; live events in memory.
Scale-out: ``DATABASE_URL=postgres://...``, ``REDIS_URL=redis://...`` (job queue
and channel layer), later S3 object storage.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.utils.translation import gettext_lazy as _

from callvault.config import ConfigError, env_bool, env_choice, env_int, env_str

BASE_DIR = Path(__file__).resolve().parent

DATA_DIR = Path(env_str("CALLVAULT_DATA_DIR", "data")).expanduser().resolve()
SPOOL_DIR = DATA_DIR / "spool"
RECORDINGS_DIR = DATA_DIR / "recordings"

DEBUG = env_bool("CALLVAULT_DEBUG", False)
_secret = env_str("CALLVAULT_SECRET_KEY")
if not _secret:
    # The embedded default keeps a generated key in the data directory so that
    # sessions survive restarts without the operator having to set anything.
    _key_file = DATA_DIR / "secret_key"
    try:
        _secret = _key_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        import secrets

        _secret = secrets.token_urlsafe(50)
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        _key_file.write_text(_secret, encoding="ascii")
        _key_file.chmod(0o600)
SECRET_KEY = _secret

ALLOWED_HOSTS = [h.strip() for h in env_str("CALLVAULT_ALLOWED_HOSTS", "*").split(",") if h.strip()]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "huey.contrib.djhuey",
    "channels",
    "callvault.apps.accounts",
    "callvault.apps.audit",
    "callvault.apps.calls",
    "callvault.apps.recordings",
    "callvault.apps.api",
    "callvault.apps.webhooks",
    "callvault.apps.live",
    "callvault.apps.customers",
    "callvault.apps.ops",
    "callvault.apps.web",
    "callvault.apps.pbx",
    "callvault.apps.completeness",
    "callvault.apps.uploads",
]

MIDDLEWARE = [
    "callvault.apps.ops.middleware.RequestMetricsMiddleware",  # first: measures the whole stack
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "callvault.apps.web.middleware.JapaneseFirstMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "callvault.apps.web.middleware.AccessMemoMiddleware",  # one role lookup per request
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "callvault.urls"
ASGI_APPLICATION = "callvault.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database_from_url(url: str) -> dict[str, object]:
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql"):
        raise ConfigError(f"DATABASE_URL: only postgres:// URLs are supported, got scheme {parsed.scheme!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")) or "callvault",
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": 5},
    }


DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": _database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "callvault.sqlite3"),
            # keep each thread's connection: reopening SQLite (and its PRAGMAs) per event is costly
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                # WAL lets the recorder, the worker and the web process read while one writes.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

LANGUAGE_CODE = "ja"
LANGUAGES = [("ja", _("日本語")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("CALLVAULT_TIME_ZONE", "Asia/Tokyo")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing one
# Static files are served by the ASGI app itself (WhiteNoise), straight from the apps' folders.
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("CALLVAULT_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

REDIS_URL = env_str("REDIS_URL")
# The address people and integrations reach this server at (webhook download links).
CALLVAULT_BASE_URL = env_str("CALLVAULT_BASE_URL", "http://localhost:8000").rstrip("/")

# Live events (WebSocket). Scale-out: Redis pub/sub across web processes. Embedded: each web
# process's own memory, fed from the database event table (see apps/web/live.py).
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:calls"
LOGOUT_REDIRECT_URL = "web:login"

# --- Operations ---------------------------------------------------------------
# /metrics (and /readyz details) for clients other than loopback: "Authorization: Bearer <token>".
METRICS_TOKEN = env_str("CALLVAULT_METRICS_TOKEN")
# /readyz fails when the spool's or the recordings' file system has less free space than this.
MIN_FREE_DISK_BYTES = env_int("CALLVAULT_MIN_FREE_DISK_MB", 1024, minimum=0) * 1024 * 1024

# --- Recorder -----------------------------------------------------------------
RECORDING_FORMAT = env_choice("CALLVAULT_RECORDING_FORMAT", "opus", ("opus", "flac", "wav"))
# Per-channel Opus bitrate in bit/s (two independent mono streams, see media/encode.py).
OPUS_BITRATE = env_int("CALLVAULT_OPUS_BITRATE", 0, minimum=0, maximum=256000) or None
# libopus encoder complexity 0..10 (None: callvault.media.encode.OPUS_COMPLEXITY).
_opus_complexity = env_int("CALLVAULT_OPUS_COMPLEXITY", -1, minimum=-1, maximum=10)
OPUS_COMPLEXITY: int | None = None if _opus_complexity < 0 else _opus_complexity
# The worker encodes calls while they go on (callvault/apps/recordings/preencode.py).
PRE_ENCODE = env_bool("CALLVAULT_PRE_ENCODE", True)
RTP_TIMEOUT = env_int("CALLVAULT_RTP_TIMEOUT", 60, minimum=5)
# PBX events: how far apart a PBX call and a recording may start and still be linked by numbers.
PBX_LINK_WINDOW = env_int("CALLVAULT_PBX_LINK_WINDOW", 30, minimum=1, maximum=600)
# Completeness check: seconds after hang-up before a call's recording is judged.
COMPLETENESS_GRACE = env_int("CALLVAULT_COMPLETENESS_GRACE", 600, minimum=0)
SPOOL_FSYNC = env_bool("CALLVAULT_SPOOL_FSYNC", False)

# --- Uploads (phones, recorder boxes, folder import) ----------------------------
UPLOADS_DIR = DATA_DIR / "uploads"  # staging for resumable uploads, intent markers
UPLOAD_MAX_BYTES = env_int("CALLVAULT_UPLOAD_MAX_MB", 500, minimum=1, maximum=100_000) * 1024 * 1024
UPLOAD_MAX_SECONDS = env_int("CALLVAULT_UPLOAD_MAX_SECONDS", 4 * 3600, minimum=10)
# Below this average (bytes of file per second of decoded audio) a file is a decompression bomb.
UPLOAD_MIN_BYTES_PER_SECOND = env_int("CALLVAULT_UPLOAD_MIN_BYTES_PER_SECOND", 100, minimum=0)
UPLOAD_EXPIRE_HOURS = env_int("CALLVAULT_UPLOAD_EXPIRE_HOURS", 24, minimum=1)
# Large multipart uploads spill to disk here (the data volume), not to a small /tmp.
FILE_UPLOAD_TEMP_DIR = str(UPLOADS_DIR / "tmp")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)

# --- Jobs ---------------------------------------------------------------------
# One task API (huey). Embedded default: a queue in a SQLite file under the data
# directory, no server needed. Scale-out: the same tasks on Redis.
JOBS_BACKEND = "redis" if REDIS_URL else "sqlite"
# Finalizing is CPU-bound (decoding, Opus encoding), so workers are processes, one per core.
JOB_WORKERS = env_int("CALLVAULT_JOB_WORKERS", os.cpu_count() or 2, minimum=1, maximum=64)
_consumer = {
    "workers": JOB_WORKERS,
    "worker_type": env_choice("CALLVAULT_JOB_WORKER_TYPE", "process", ("process", "thread")),
    # An idle worker looks for new jobs at least every 100 ms (one indexed SQLite query),
    # so a recording is ready soon after hang-up; Redis blocks on the queue instead.
    "initial_delay": 0.02,
    "backoff": 1.5,
    "max_delay": 0.1,
    "check_worker_health": True,
    "health_check_interval": 5,
}
if REDIS_URL:
    HUEY = {
        "huey_class": "huey.RedisHuey",
        "name": env_str("CALLVAULT_QUEUE_NAME", "callvault"),
        "url": REDIS_URL,
        "blocking": True,
        "read_timeout": 1,
        "immediate": False,
        "consumer": _consumer,
    }
else:
    HUEY = {
        "huey_class": "huey.SqliteHuey",
        "name": "callvault",
        "filename": str(DATA_DIR / "jobs.sqlite3"),
        "immediate": False,
        "consumer": _consumer,
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("CALLVAULT_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
