"""Fission's settings: one module, every value from the environment.

Every variable is listed, with a comment, in `.env.example`. With nothing set the
project runs on SQLite under `var/` with in-process Celery tasks (`make run` sets
DEBUG=true). With DEBUG false, SECRET_KEY must be given and the TLS switches default on.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; real environment variables win

DEBUG = env.bool("DEBUG", default=False)


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment for production, "
            "or set DEBUG=true for a development key generated under var/."
        )
    # Development only: generated once and kept, so sessions and signed cookies survive
    # a restart of `make run`.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Old keys still accepted when verifying signatures, for a rotation without logging
# everyone out or breaking links already shared.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[SITE_URL])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "csp",
    "axes",
    "apps.common",
    "apps.campaigns",
    "apps.referrals",
    "apps.api",
    "apps.rewards",
    "apps.landing",
    "apps.analytics",
    "apps.notifications",
    "apps.exports",
    "apps.trust",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A database outage answers 503 with Retry-After, never a stack trace.
    "apps.landing.errors.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it turns a lockout raised during login into its page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'fission.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {})
    # WAL lets the dev server read while a background write is under way.
    DATABASES["default"]["OPTIONS"].setdefault("init_command", "PRAGMA journal_mode=WAL;")
else:
    # Persistent connections: a new PostgreSQL connection costs more than most requests.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's, with a health check that skips the round trip when the connection
        # is idle and the server has said nothing (apps/common/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "apps.common.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate limits, QR images) ---------------------------------------------------
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # Django's, keeping its redis-py clients (apps/common/cache.py).
    CACHES["default"]["BACKEND"] = "apps.common.cache.RedisCache"
    # A Redis that is down or unreachable answers within a second, so that the pages that
    # use the cache go on without it (rate limits let people through, images are drawn
    # again) instead of waiting. `?socket_timeout=` in CACHE_URL overrides.
    CACHES["default"].setdefault("OPTIONS", {})
    CACHES["default"]["OPTIONS"].setdefault("socket_connect_timeout", 1)
    CACHES["default"]["OPTIONS"].setdefault("socket_timeout", 1)

# --- Auth -----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Admin sign-in (the only password login) goes through django-axes first: after
# AXES_FAILURE_LIMIT failed tries from one client address, that address is locked out
# for AXES_COOLOFF_MINUTES (HTTP 429). Counts live in the cache (CACHE_URL: use Redis
# with several web processes), under hashed keys: no address is stored in the database.
# force_login (tests) does not authenticate and is not counted.
# One backend (axes's check in front of Django's model backend), so that code asking
# "who has this permission" (User.objects.with_perm) needs to name none.
AUTHENTICATION_BACKENDS = ["apps.trust.lockout.LockoutBackend"]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
# The same client address as everywhere else (TRUSTED_PROXIES decides), and in logs only
# its keyed hash.
AXES_CLIENT_IP_CALLABLE = "apps.common.ip.client_ip"
AXES_CLIENT_STR_CALLABLE = "apps.trust.lockout.client_str"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "trust/lockout.html"
# The in-process cache is right for one development process; axes warns about it for
# production (check --deploy), where CACHE_URL must name a shared cache.
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])
if DEBUG and CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    SILENCED_SYSTEM_CHECKS.append("axes.W001")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The covering indexes' INCLUDE columns serve PostgreSQL's index-only scans; SQLite
    # (the embedded default) builds the same indexes without them, which is all it needs.
    SILENCED_SYSTEM_CHECKS.append("models.W040")

# --- Internationalisation -------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env.bool("STATIC_MANIFEST", default=True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Email ----------------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Fission <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Seconds to wait for the mail server, so that a hung one cannot hold a worker.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)

# --- Security -------------------------------------------------------------------------
# Each TLS switch is on when DEBUG is off, and each can be overridden on its own (for a
# deployment behind a proxy that terminates TLS and already redirects, say).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# The proxy header is trusted only when the deployment says a proxy sets it.
if env.bool("SECURE_PROXY_SSL", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Client addresses: REMOTE_ADDR, unless a proxy in this list forwarded the request, in
# which case the right-most X-Forwarded-For entry that is not itself a trusted proxy.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# Key for the hash of client IP addresses (never stored raw). Rotate by moving the old
# key to IP_HASH_KEY_FALLBACKS; defaults to a key derived from SECRET_KEY.
IP_HASH_KEY = env.str("IP_HASH_KEY", default="")
IP_HASH_KEY_FALLBACKS = env.list("IP_HASH_KEY_FALLBACKS", default=[])

# The public pages run no inline script and load nothing from other origins, so the
# policy can be strict. The admin and the API's browsable docs are operators' pages
# whose third-party templates use inline code; they keep the other headers.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/admin/", "/api/docs/"],
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}
# A failed CSRF check (an expired form, cookies off) gets a friendly page, not Django's.
CSRF_FAILURE_VIEW = "apps.landing.errors.csrf_failure"

# --- Rate limits (django-ratelimit, counted in the default cache) ----------------------
# The cache must be shared by all web processes for the limits to hold: with several,
# set CACHE_URL to Redis. django_ratelimit is deliberately not in INSTALLED_APPS: its
# system check refuses the in-process cache that a single `make run` process is fine with.
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_USE_CACHE = "default"
# If the cache cannot be reached, let people join rather than turn everyone away.
RATELIMIT_FAIL_OPEN = True

# --- REST API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_PAGINATION_CLASS": "apps.api.pagination.Pagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=100),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fission API",
    "DESCRIPTION": "Register participants, post conversion events, read rewards and "
    "K-factor statistics. Authenticate with `Authorization: Bearer <key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from static/, not a CDN: self-hosted installs may be offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.api.schema.empty_query_parameters_are_absent",
    ],
}

# --- Celery ---------------------------------------------------------------------------
# With no broker the tasks run in-process (development, tests); production names Redis
# or RabbitMQ. JSON only, time limits, no result backend: tasks record their effects in
# the database, never in results.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
# Redis: a message taken by a worker that dies unacknowledged (acks_late) goes back to
# the queue after `visibility_timeout` seconds. It must be longer than the longest task
# (CELERY_TASK_TIME_LIMIT), or a slow task would also run a second time. Lost webhook
# sends do not wait for it: the sweep retries them after WEBHOOK_LEASE_SECONDS.
# A broker that is down answers a publish quickly (connect timeout, one retry): what was
# not queued is in the database, and the sweep sends it.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    "socket_connect_timeout": 3,
    "socket_timeout": 10,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers keep their database connections as web processes do (CONN_MAX_AGE, with a
# health check before reuse: config/celery.py), rather than one new connection per task.
CELERY_DB_REUSE_MAX = 1_000_000_000
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic jobs. django-celery-beat copies these into its tables when beat starts, where
# the admin (Periodic tasks) can change their timing. Holding periods are rows with a due
# time that the release job picks up, never a task countdown.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "release-held-rewards": {
        "task": "apps.rewards.tasks.release_held_rewards",
        "schedule": env.float("REWARDS_RELEASE_EVERY_SECONDS", default=300.0),
    },
    # Purchases taken in with `Prefer: respond-async` whose worker was never woken (the
    # broker was down): each request wakes one, this only makes up for lost ones.
    "apply-queued-events": {
        "task": "apps.rewards.tasks.apply_queued_events",
        "schedule": env.float("QUEUED_EVENTS_SWEEP_SECONDS", default=30.0),
    },
    "roll-up-tree": {"task": "apps.referrals.tasks.roll_up_tree", "schedule": 60.0},
    # The K-factor report's tallies: the report counts only what joined or clicked since.
    "roll-up-reports": {"task": "apps.analytics.tasks.roll_up_reports", "schedule": 60.0},
    "send-due-webhooks": {
        "task": "apps.api.tasks.webhooks_send_due",
        "schedule": env.float("WEBHOOK_SWEEP_EVERY_SECONDS", default=60.0),
    },
    # Analytics, for the local day that just ended: the dashboard's daily snapshots, then
    # the K-drop alerts (which read the raw tables, so they do not wait for the snapshots).
    "analytics-snapshots": {
        "task": "apps.analytics.tasks.snapshot_all",
        "schedule": crontab(hour=0, minute=20),
    },
    "analytics-k-alerts": {
        "task": "apps.analytics.tasks.check_k_alerts",
        "schedule": crontab(hour=0, minute=40),
    },
    # Participant messages waiting to be (re)sent: retries, and any whose task was lost.
    "send-due-messages": {
        "task": "apps.notifications.tasks.messages_send_due",
        "schedule": env.float("MESSAGE_SWEEP_EVERY_SECONDS", default=60.0),
    },
    # Trust: clicks past their retention are rolled up into the daily snapshots (after
    # the night's snapshot run) and deleted; inviters whose friends never come back are
    # flagged for review.
    "trust-purge-old-clicks": {
        "task": "apps.trust.tasks.purge_old_clicks",
        "schedule": crontab(hour=1, minute=10),
    },
    "trust-referral-quality": {
        "task": "apps.trust.tasks.check_referral_quality",
        "schedule": crontab(hour=1, minute=40),
    },
    # Exports: files older than EXPORT_RETENTION_DAYS are deleted.
    "exports-purge-old-files": {
        "task": "apps.exports.tasks.purge_old_export_files",
        "schedule": crontab(hour=1, minute=25),
    },
    # Idempotency keys older than IDEMPOTENCY_KEY_DAYS are deleted.
    "rewards-purge-idempotency-keys": {
        "task": "apps.rewards.tasks.purge_old_idempotency_keys",
        "schedule": crontab(hour=1, minute=55),
    },
}

# --- Logging --------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # axes announces its version at every start; its lockouts are warnings.
        "axes": {"level": "WARNING"},
    },
}

# --- Fission --------------------------------------------------------------------------
FISSION = {
    # Length of invite codes; the alphabet leaves out look-alikes (0/o, 1/l/i).
    "INVITE_CODE_LENGTH": env.int("INVITE_CODE_LENGTH", default=8),
    # Version of the consent text on the join form, recorded with every web join. Change
    # it whenever the wording changes, so each consent can be matched to what was shown.
    "CONSENT_VERSION": env.str("CONSENT_VERSION", default="1"),
    # Joins accepted from one client address (IPv6: one /64) before a 429 page:
    # "<count>/<period>", the period in s, m, h or d, optionally with a number: "10/10m".
    "JOIN_RATE_LIMIT": env.str("JOIN_RATE_LIMIT", default="10/10m"),
    # A font that draws Chinese for the share poster (TrueType, OpenType or a collection,
    # with the face's index in it). Empty: Noto Sans CJK SC where Debian installs it.
    "POSTER_FONT": env.str("POSTER_FONT", default=""),
    "POSTER_FONT_INDEX": env.int("POSTER_FONT_INDEX", default=0),
    # Outbound webhooks: seconds to wait for the host's answer; tries before giving up
    # (network errors and 5xx are retried, 30 s, 1 min, 2 min, … apart, at most 6 h).
    "WEBHOOK_TIMEOUT_SECONDS": env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0),
    "WEBHOOK_MAX_ATTEMPTS": env.int("WEBHOOK_MAX_ATTEMPTS", default=10),
    "WEBHOOK_RETRY_BASE_SECONDS": env.int("WEBHOOK_RETRY_BASE_SECONDS", default=30),
    # How long a worker holds a delivery it took before another may try it: after a worker
    # crash, its deliveries are sent again this long after they were taken (by the sweep).
    # Unset: WEBHOOK_TIMEOUT_SECONDS + 60.
    "WEBHOOK_LEASE_SECONDS": env.float("WEBHOOK_LEASE_SECONDS", default=None),
    # The sweep leaves a delivery not tried yet to the message queued when it was made for
    # this long (that message may be waiting behind a backlog); then it queues another.
    "WEBHOOK_SWEEP_GRACE_SECONDS": env.float("WEBHOOK_SWEEP_GRACE_SECONDS", default=30.0),
    # Memory each sort or hash of a K-factor report may use on PostgreSQL (SET LOCAL
    # work_mem for the report's transaction); empty leaves the server's setting.
    "REPORT_WORK_MEM": env.str("REPORT_WORK_MEM", default="64MB"),
    # Addresses that get K-drop alert emails, besides staff with the permission to.
    "K_ALERT_EMAILS": env.list("K_ALERT_EMAILS", default=[]),
    # Participant messages. How long a link confirming an email address works; how many
    # new links one participant may ask for, in a period ("3/h") and in all; how often
    # one client address may ask (IPv6: per /64).
    "VERIFY_LINK_MAX_AGE_HOURS": env.int("VERIFY_LINK_MAX_AGE_HOURS", default=72),
    "VERIFY_RESEND_RATE_LIMIT": env.str("VERIFY_RESEND_RATE_LIMIT", default="3/h"),
    "VERIFY_RESEND_IP_RATE_LIMIT": env.str("VERIFY_RESEND_IP_RATE_LIMIT", default="20/h"),
    "VERIFY_RESEND_MAX": env.int("VERIFY_RESEND_MAX", default=10),
    # Tries per message when the mail server is unreachable or answers 4xx, and the
    # wait before the first retry in seconds (doubling each time, at most 6 h).
    "MESSAGE_MAX_ATTEMPTS": env.int("MESSAGE_MAX_ATTEMPTS", default=5),
    "MESSAGE_RETRY_BASE_SECONDS": env.int("MESSAGE_RETRY_BASE_SECONDS", default=60),
    # Finance reports from the admin: up to this many rows download at once (streamed);
    # more run as a background export job whose file appears in the exports list.
    "EXPORT_SYNC_MAX_ROWS": env.int("EXPORT_SYNC_MAX_ROWS", default=20_000),
    # Seconds a background export may run (a million rows of XLSX take a few minutes);
    # a job still "running" after this is taken to have lost its worker and may rerun.
    "EXPORT_JOB_TIME_LIMIT": env.int("EXPORT_JOB_TIME_LIMIT", default=3600),
    # PostgreSQL's work_mem for the statement that writes a CSV export (its sort by id):
    # at a million rows the default 4MB sorts in temporary files, 64MB in memory.
    "EXPORT_WORK_MEM": env.str("EXPORT_WORK_MEM", default="64MB"),
    # Days a background export's file is kept (it names participants); then it is
    # deleted every night and the job, with its filters, rows and totals, says expired.
    "EXPORT_RETENTION_DAYS": env.int("EXPORT_RETENTION_DAYS", default=30),
    # Days clicks on invite links are kept; older ones are rolled up into the daily
    # snapshots and deleted every night. At least 30 (the snapshots' refresh needs them).
    "CLICK_RETENTION_DAYS": env.int("CLICK_RETENTION_DAYS", default=180),
    # Days an Idempotency-Key answers a resent event with its first response; older keys
    # are deleted every night (a refund resent after that would count again).
    "IDEMPOTENCY_KEY_DAYS": env.int("IDEMPOTENCY_KEY_DAYS", default=30),
    # The click buffer: a Redis database (redis://host:6379/2) where invite redirects
    # queue their clicks, written to the click log by COPY every CLICK_FLUSH_EVERY_SECONDS
    # (Celery beat). Empty: each redirect inserts its click (one INSERT per click).
    "CLICK_BUFFER_URL": env.str("CLICK_BUFFER_URL", default=""),
    # Seconds a web process remembers whose an invite code is, so that a popular link's
    # clicks cost no query. Codes only change when a person is erased: their old link
    # stops working within this time. (A campaign's state is re-read every 5 s: one that
    # ends is honoured within seconds.) 0: both are looked up on every click.
    "INVITE_CACHE_SECONDS": env.float("INVITE_CACHE_SECONDS", default=300.0),
    # A SQLite file (on a memory file system, in a folder only the web user can write:
    # /dev/shm/fission/invites.sqlite3) where the web processes of one machine share what
    # they learn of invite codes, for INVITE_CACHE_SECONDS; "" (the default): each
    # process asks Redis on its own.
    "INVITE_HOST_DIRECTORY": env.str("INVITE_HOST_DIRECTORY", default=""),
    # Data exports one person may ask for by email (personal page) per day.
    "DATA_EXPORTS_PER_DAY": env.int("DATA_EXPORTS_PER_DAY", default=3),
}
if FISSION["CLICK_BUFFER_URL"]:
    # The click buffer, written to the click log every few seconds. A flush that waited
    # in the queue longer than its period is dropped: the next one does its work.
    _every = env.float("CLICK_FLUSH_EVERY_SECONDS", default=5.0)
    CELERY_BEAT_SCHEDULE["flush-click-buffer"] = {
        "task": "apps.referrals.tasks.flush_click_buffer",
        "schedule": _every,
        "options": {"expires": _every},
    }
if FISSION["CLICK_RETENTION_DAYS"] < 30:
    raise ImproperlyConfigured("CLICK_RETENTION_DAYS must be at least 30.")
if not re.fullmatch(r"[1-9][0-9]*(kB|MB|GB)", FISSION["EXPORT_WORK_MEM"]):
    raise ImproperlyConfigured("EXPORT_WORK_MEM must be a size such as 64MB (kB, MB or GB).")
if FISSION["IDEMPOTENCY_KEY_DAYS"] < 1:
    raise ImproperlyConfigured("IDEMPOTENCY_KEY_DAYS must be at least 1.")
if FISSION["EXPORT_RETENTION_DAYS"] < 1:
    raise ImproperlyConfigured("EXPORT_RETENTION_DAYS must be at least 1.")
