"""The portal's settings plus one bare view, the baseline of bench_self_service.py."""

from codesquare.settings import *  # noqa: F403

ROOT_URLCONF = "bench_urls"
