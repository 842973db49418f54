"""Settings of the server the HTTP benchmarks load: Fission's own, with the baseline views
mounted beside its URLs (tests/bench/urls.py). Nothing else differs."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "tests.bench.urls"

# The redirect benchmark ends each run with requests for an unknown code (404), which
# Django would log one by one.
LOGGING["loggers"]["django.request"] = {"level": "ERROR"}  # noqa: F405
