"""One settings module, read from the environment.

Every value has a default that runs on a developer machine with nothing set: PostgreSQL and Redis
on localhost, the offline model, DEBUG on. Production sets SECRET_KEY, DEBUG=false, ALLOWED_HOSTS,
DATABASE_URL, REDIS_URL and the LLM variables (see README).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import dj_database_url

# litellm fetches a price map from the internet at import unless told not to; set before any import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_json(name: str, default: Any) -> Any:
    value = os.environ.get(name)
    return json.loads(value) if value else default


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-change-me" if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError("SECRET_KEY must be set when DEBUG is off")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_NAME = env_str("SITE_NAME", "Parley")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "conversations",
    "memory",
    "moderation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatproject.urls"
ASGI_APPLICATION = "chatproject.asgi.application"

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
                "chatproject.context_processors.site",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chatproject")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Threads per process that run ORM work for sockets and API requests (chatproject/db_threads.py);
# each holds a database connection. Turns prepared at once beyond this wait for a thread.
DB_THREADS = env_int("DB_THREADS", 8)
# pgvector's HNSW search settings, set once per connection rather than per query: candidates
# examined, and an iterative scan so a filter (one conversation, one user) cannot starve the index.
MEMORY_EF_SEARCH = env_int("MEMORY_EF_SEARCH", 100)
DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
    f"-c hnsw.ef_search={MEMORY_EF_SEARCH} -c hnsw.iterative_scan=relaxed_order"
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# The channel layer's key prefix lets several deployments (or test runs) share one Redis.
CHANNEL_LAYER_PREFIX = env_str("CHANNEL_LAYER_PREFIX", "chat")
# Prefix of the product's own Redis keys (rate limits, the LLM queue): see chatproject/redis_client.py.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", CHANNEL_LAYER_PREFIX)
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": env_str("CHANNEL_LAYER_BACKEND", "channels_redis.pubsub.RedisPubSubChannelLayer"),
        "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNEL_LAYER_PREFIX},
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": CHANNEL_LAYER_PREFIX,
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat-home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "var" / "staticfiles")))
# daphne serves /static/ itself unless a reverse proxy does (then set SERVE_STATIC=false).
SERVE_STATIC = env_bool("SERVE_STATIC", True)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "chat")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE = {
    "reap-interrupted-streams": {
        "task": "conversations.tasks.reap_interrupted",
        "schedule": env_float("REAPER_INTERVAL_SECONDS", 15.0),
    },
    "purge-hidden-conversations": {
        "task": "conversations.tasks.purge_hidden_conversations",
        "schedule": env_float("PURGE_INTERVAL_SECONDS", 3600.0),
    },
    "apply-retention": {
        "task": "conversations.tasks.apply_retention",
        "schedule": env_float("RETENTION_INTERVAL_SECONDS", 3600.0),
    },
}

# --- LLM gateway --------------------------------------------------------------------------------
# LLM_MODEL is the model offered by default; LLM_MODELS (JSON list) declares several. Each entry:
# {"name": shown to users, "model": litellm model string, "api_base", "api_key", "context_window"}.
LLM_MODEL = env_str("LLM_MODEL", "offline/parley-mini")
LLM_API_BASE = env_str("LLM_API_BASE", "")
LLM_API_KEY = env_str("LLM_API_KEY", "")
LLM_CONTEXT_WINDOW = env_int("LLM_CONTEXT_WINDOW", 0)
LLM_MODELS: list[dict[str, Any]] = env_json("LLM_MODELS", [])
LLM_REQUEST_TIMEOUT = env_float("LLM_REQUEST_TIMEOUT", 120.0)
# Stream OpenAI-compatible servers (`openai/…`, `hosted_vllm/…` with an api_base, one deployment)
# with the product's own SSE reader instead of litellm, which costs ~1 ms of CPU per chunk
# (chatproject/llm/openai_stream.py). false: every model through litellm.
LLM_FAST_PATH = env_bool("LLM_FAST_PATH", True)
# litellm's Router, for models with several deployments (entries sharing a "name", or a
# "deployments" list) or "fallbacks" (other model names tried in order when all deployments fail).
LLM_ROUTER_STRATEGY = env_str("LLM_ROUTER_STRATEGY", "simple-shuffle")
# Retries on the same model (another deployment when one is left) before its fallbacks answer.
LLM_ROUTER_RETRIES = env_int("LLM_ROUTER_RETRIES", 2)
# Refused requests a deployment may have in a minute before it is cooled down (taken out of
# rotation for LLM_ROUTER_COOLDOWN_SECONDS). One that stalls or drops before its first token is
# cooled down at once: each such failure costs a person a whole timeout.
LLM_ROUTER_ALLOWED_FAILS = env_int("LLM_ROUTER_ALLOWED_FAILS", 1)
LLM_ROUTER_COOLDOWN_SECONDS = env_float("LLM_ROUTER_COOLDOWN_SECONDS", 30.0)
# Seconds without a byte from a deployment (before or between tokens) before it counts as failed.
LLM_ROUTER_TIMEOUT = env_float("LLM_ROUTER_TIMEOUT", LLM_REQUEST_TIMEOUT)
# The model that writes summaries and extracts facts (a name from LLM_MODELS); empty: the default.
LLM_BACKGROUND_MODEL = env_str("LLM_BACKGROUND_MODEL", "")
LLM_MAX_OUTPUT_TOKENS = env_int("LLM_MAX_OUTPUT_TOKENS", 1024)
LLM_SYSTEM_PROMPT = env_str(
    "LLM_SYSTEM_PROMPT",
    "You are a helpful, precise assistant. Answer in Markdown when structure helps.",
)
# The offline model: seconds between streamed tokens and a cap on reply length (in words).
OFFLINE_TOKEN_DELAY = env_float("OFFLINE_TOKEN_DELAY", 0.02)
OFFLINE_FIRST_TOKEN_DELAY = env_float("OFFLINE_FIRST_TOKEN_DELAY", 0.0)
OFFLINE_MAX_WORDS = env_int("OFFLINE_MAX_WORDS", 400)
# Repeat the user's words until OFFLINE_MAX_WORDS: long replies for demos and tests of stop/resume.
OFFLINE_PAD_TO_MAX = env_bool("OFFLINE_PAD_TO_MAX", False)
# Embeddings (chatproject/llm/embeddings.py): a backend class by dotted path. The default runs
# all-MiniLM-L6-v2 locally; LitellmEmbeddingBackend calls EMBEDDING_MODEL, which must return 384-d.
EMBEDDING_BACKEND = env_str("EMBEDDING_BACKEND", "chatproject.llm.embeddings.MiniLMOnnxBackend")
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL", "")
EMBEDDING_API_BASE = env_str("EMBEDDING_API_BASE", "")
EMBEDDING_API_KEY = env_str("EMBEDDING_API_KEY", "")
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 32)
# onnxruntime threads per process: 1 leaves the second core of a 2-core host to the web server.
EMBEDDING_THREADS = env_int("EMBEDDING_THREADS", 1)

# --- Chat streaming -----------------------------------------------------------------------------
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 32_000)
CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 256_000)
CHAT_COALESCE_MS = env_int("CHAT_COALESCE_MS", 25)
# Under load the window widens so that a process publishes at most about CHAT_MAX_FLUSHES_PER_SECOND
# deltas in all (each costs a guardrail check, a Redis publish and a socket write), up to
# CHAT_COALESCE_MAX_MS: 200 replies streaming at once get a delta every 100 ms instead of every
# 25 ms. The first piece of a reply is always sent at once.
CHAT_MAX_FLUSHES_PER_SECOND = env_int("CHAT_MAX_FLUSHES_PER_SECOND", 2000)
CHAT_COALESCE_MAX_MS = env_int("CHAT_COALESCE_MAX_MS", 250)
CHAT_CHECKPOINT_SECONDS = env_float("CHAT_CHECKPOINT_SECONDS", 1.0)
CHAT_HEARTBEAT_SECONDS = env_float("CHAT_HEARTBEAT_SECONDS", 5.0)
# A streaming row whose heartbeat is older than this belongs to a dead process.
CHAT_STALE_STREAM_SECONDS = env_float("CHAT_STALE_STREAM_SECONDS", 30.0)
CHAT_SNAPSHOT_TIMEOUT = env_float("CHAT_SNAPSHOT_TIMEOUT", 1.5)

# --- Token budgets and the LLM queue (docs/operations.md) ------------------------------------------
# Plans live in the database and are edited in the admin; these are the values the `free` and
# `premium` plans start with. Token limits count prompt + reply tokens of chat replies; 0 = unlimited.
BUDGET_DEFAULT_PLAN = env_str("BUDGET_DEFAULT_PLAN", "free")
BUDGET_FREE_DAILY_TOKENS = env_int("BUDGET_FREE_DAILY_TOKENS", 100_000)
BUDGET_FREE_MONTHLY_TOKENS = env_int("BUDGET_FREE_MONTHLY_TOKENS", 1_000_000)
BUDGET_PREMIUM_DAILY_TOKENS = env_int("BUDGET_PREMIUM_DAILY_TOKENS", 1_000_000)
BUDGET_PREMIUM_MONTHLY_TOKENS = env_int("BUDGET_PREMIUM_MONTHLY_TOKENS", 20_000_000)
BUDGET_FREE_QUEUE_PRIORITY = env_int("BUDGET_FREE_QUEUE_PRIORITY", 0)
BUDGET_PREMIUM_QUEUE_PRIORITY = env_int("BUDGET_PREMIUM_QUEUE_PRIORITY", 10)
# A model (a name from LLM_MODELS) that answers, uncounted, when a user is over budget, for plans
# that name none themselves. Empty: an over-budget turn is refused.
BUDGET_FALLBACK_MODEL = env_str("BUDGET_FALLBACK_MODEL", "")
# Concurrent generations per served model across every node (an LLM_MODELS entry's
# "max_concurrency" wins); 0 = unbounded. Past it, turns wait in a queue, higher plan priority first.
LLM_QUEUE_MAX_CONCURRENCY = env_int("LLM_QUEUE_MAX_CONCURRENCY", 0)
# A slot is a lease renewed while its generation runs: a dead node's slots free up after this long.
LLM_QUEUE_LEASE_SECONDS = env_float("LLM_QUEUE_LEASE_SECONDS", 30.0)
# A turn that waits this long for a slot fails with `queue_timeout` (and is not charged).
LLM_QUEUE_TIMEOUT_SECONDS = env_float("LLM_QUEUE_TIMEOUT_SECONDS", 60.0)
# Waiters are woken through Redis pub/sub when a slot frees; they also look this often, which is
# what notices the slots of a dead node expiring.
LLM_QUEUE_POLL_SECONDS = env_float("LLM_QUEUE_POLL_SECONDS", 1.0)

# --- Rate limits (conversations/limits/ratelimit.py, docs/operations.md) ----------------------------
# "N/S": at most N in any S seconds, a sliding window shared by every node through Redis.
# "" or "0" turns a limit off. Log-ins count every attempt per address, failures per username.
RATE_LIMIT_SEND_USER = env_str("RATE_LIMIT_SEND_USER", "20/60")
RATE_LIMIT_SEND_IP = env_str("RATE_LIMIT_SEND_IP", "120/60")
RATE_LIMIT_SIGNUP_IP = env_str("RATE_LIMIT_SIGNUP_IP", "10/3600")
RATE_LIMIT_LOGIN_IP = env_str("RATE_LIMIT_LOGIN_IP", "30/300")
RATE_LIMIT_LOGIN_USER = env_str("RATE_LIMIT_LOGIN_USER", "5/300")
# Reverse proxies (addresses or networks) whose X-Forwarded-For is believed. Empty: the peer's
# address is the client's, so behind a proxy every client would share the proxy's limits.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])

# --- OpenAI-compatible API (conversations/api.py, docs/api.md) -------------------------------------
# Largest request body accepted, in bytes (answered with 413 above it).
API_MAX_REQUEST_BYTES = env_int("API_MAX_REQUEST_BYTES", 2 * 1024 * 1024)
# A key's "last used" time is written at most this often (seconds), not on every request.
API_KEY_LAST_USED_SECONDS = env_float("API_KEY_LAST_USED_SECONDS", 60.0)
API_KEYS_PER_USER = env_int("API_KEYS_PER_USER", 20)
# Stateless API exchanges are kept out of sight this long (for moderation and the after-reply
# guardrails), then deleted by `hidden_conversations_purge`; their ledger rows and flags stay.
API_STATELESS_RETENTION_HOURS = env_float("API_STATELESS_RETENTION_HOURS", 24.0)
# The largest conversations file (our JSON export, ChatGPT's conversations.json or its zip) accepted.
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 50 * 1024 * 1024)

# --- Retention (conversations/services/retention.py, docs/operations.md) ----------------------
# Conversations not updated for this many days are deleted for good; 0 keeps them forever.
# Conversations under a moderation hold (an open flag) are kept whatever their age.
CHAT_RETENTION_DAYS = env_float("CHAT_RETENTION_DAYS", 0.0)
# Temporary chats are deleted this long after their last activity.
TEMPORARY_CHAT_RETENTION_HOURS = env_float("TEMPORARY_CHAT_RETENTION_HOURS", 24.0)

# --- Images attached to messages (conversations/services/attachments.py) ------------------------
# Files go through Django's storage API: the file system under MEDIA_ROOT by default. For an
# S3-compatible store, install django-storages and set STORAGES["default"] to
# {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {"bucket_name": ..., "endpoint_url": ...,
# "access_key": ..., "secret_key": ..., "default_acl": "private", "querystring_auth": True}}.
# Images are only ever served through the owner-checking view, never from a public URL.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    **env_json("STORAGES", {}),
}
IMAGE_MAX_BYTES = env_int("IMAGE_MAX_BYTES", 10 * 1024 * 1024)
# Decoded size limits: a small file can still decode to an enormous bitmap.
IMAGE_MAX_PIXELS = env_int("IMAGE_MAX_PIXELS", 40_000_000)
IMAGE_MAX_SIDE = env_int("IMAGE_MAX_SIDE", 8192)
IMAGE_MAX_PER_MESSAGE = env_int("IMAGE_MAX_PER_MESSAGE", 4)
# What the context builder counts for one image (providers bill images by tiles, not by bytes).
IMAGE_TOKEN_ESTIMATE = env_int("IMAGE_TOKEN_ESTIMATE", 800)
# Images of earlier messages sent again with each turn, newest first; older ones become a note.
CONTEXT_MAX_IMAGES = env_int("CONTEXT_MAX_IMAGES", 4)
# A default model (LLM_MODEL alone) that reads images; LLM_MODELS entries say `"vision": true`.
LLM_VISION = env_bool("LLM_VISION", False)

# --- Context window and memory ---------------------------------------------------------------
# The newest N user/assistant pairs always come first; older turns reach the prompt through the
# rolling summary and similarity recall (DESIGN.md §5).
CONTEXT_RECENT_TURNS = env_int("CONTEXT_RECENT_TURNS", 5)
# How far back (in messages after the summary) the builder looks for turns to fill spare room.
CONTEXT_HISTORY_LIMIT = env_int("CONTEXT_HISTORY_LIMIT", 60)
CONTEXT_RECALL_LIMIT = env_int("CONTEXT_RECALL_LIMIT", 3)
CONTEXT_RECALL_THRESHOLD = env_float("CONTEXT_RECALL_THRESHOLD", 0.35)
CONTEXT_FACTS_LIMIT = env_int("CONTEXT_FACTS_LIMIT", 10)
# Facts are short and few: the nearest ten go in unless they point away from the question.
CONTEXT_FACTS_THRESHOLD = env_float("CONTEXT_FACTS_THRESHOLD", 0.0)
# A summary is written once this many tokens sit outside the recent window, unsummarized.
SUMMARY_TRIGGER_TOKENS = env_int("SUMMARY_TRIGGER_TOKENS", 1200)
SUMMARY_MAX_INPUT_TOKENS = env_int("SUMMARY_MAX_INPUT_TOKENS", 6000)
SUMMARY_MAX_WORDS = env_int("SUMMARY_MAX_WORDS", 250)
SUMMARY_SCAN_LIMIT = env_int("SUMMARY_SCAN_LIMIT", 5000)
FACTS_DEBOUNCE_SECONDS = env_float("FACTS_DEBOUNCE_SECONDS", 20.0)
FACTS_BATCH = env_int("FACTS_BATCH", 50)
FACTS_DEDUP_THRESHOLD = env_float("FACTS_DEDUP_THRESHOLD", 0.9)

# --- Guardrails and moderation (DESIGN.md §7) ----------------------------------------------------
MODERATION_ENABLED = env_bool("MODERATION_ENABLED", True)
# "inline": check the reply on each chunk before it is shown, stopping it on a block; "after": check
# the finished reply in a background task and flag it for review; "both".
MODERATION_OUTPUT_MODE = env_str("MODERATION_OUTPUT_MODE", "inline")
# Personal data found in a user's message is redacted in what the model receives; with this on, the
# stored message is redacted too (the user then sees the redaction in their history).
MODERATION_REDACT_STORED_INPUT = env_bool("MODERATION_REDACT_STORED_INPUT", False)
# A per-deployment token in the system prompt that no reply has a reason to repeat.
MODERATION_CANARY = env_str(
    "MODERATION_CANARY", "cn-" + hashlib.sha256(f"canary:{SECRET_KEY}".encode()).hexdigest()[:16]
)
MODERATION_DETECTORS: list[dict[str, Any]] = env_json(
    "MODERATION_DETECTORS",
    [
        {
            "name": "injection",
            "path": "moderation.detectors.injection.InjectionDetector",
            "threshold": 0.5,
            "actions": {"input": "block", "output_after": "flag"},
        },
        {
            "name": "toxicity",
            "path": "moderation.detectors.toxicity.ToxicityDetector",
            "threshold": 0.7,
            "actions": {"input": "block", "output_after": "flag"},
        },
        {
            # The same detector without its embedding step: cheap enough for every streamed chunk.
            "name": "toxicity_inline",
            "path": "moderation.detectors.toxicity.ToxicityDetector",
            "options": {"use_knn": False},
            "threshold": 0.7,
            "actions": {"output_inline": "block"},
        },
        {
            "name": "pii",
            "path": "moderation.detectors.pii.PIIDetector",
            "threshold": 0.5,
            "actions": {"input": "redact", "output_after": "flag"},
        },
        {
            "name": "leakage",
            "path": "moderation.detectors.leakage.LeakageDetector",
            "threshold": 0.5,
            "actions": {"output_inline": "block", "output_after": "flag"},
        },
    ],
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # litellm warns each time its logging worker meets a new event loop (every async_to_sync call
        # in a Celery task); that is expected here, so only its errors are worth a line.
        "LiteLLM": {"level": "ERROR"},
        "LiteLLM Router": {"level": "WARNING"},
        "LiteLLM Proxy": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}
