"""Settings of the Django LiveView benchmark peer.

The set-up of Django LiveView's install guide (Daphne, Channels, the Redis
channel layer), production-like: no debug, no access log. The channel-layer
prefix comes from the harness so that runs never see each other's groups.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "benchmark-peer-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "daphne",
    "channels",
    "liveview",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "benchapp",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "peer.urls"
ASGI_APPLICATION = "peer.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

# No query is made on the benchmarked paths; the auth middleware of the ASGI
# stack only needs a database to be configured.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ":memory:",
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, the
            # same 5 s that channels-redis blocks in BZPOPMIN for: an idle
            # consumer's receive then fails with "Timeout reading from" and
            # its socket is dropped. A longer timeout keeps the set-up of the
            # install guide working with the current redis-py.
            "hosts": [
                {
                    "host": os.environ.get("BENCH_REDIS_HOST", "127.0.0.1"),
                    "port": int(os.environ.get("BENCH_REDIS_PORT", "6379")),
                    "socket_timeout": 60,
                }
            ],
            "prefix": os.environ.get("BENCH_CHANNEL_PREFIX", "asgi"),
        },
    }
}

STATIC_URL = "static/"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
