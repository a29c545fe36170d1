"""Environment for the test process, set before pytest-django imports the settings.

Tests run with DEBUG off (as production does) but over plain HTTP and with a throwaway key;
a developer's .env never leaks into a test run.
"""

import os
import tempfile

_TEST_ENV = {
    "READ_DOT_ENV": "false",
    "SECRET_KEY": "test-only-" + "q9Vx-2mLz" * 6,
    "DEBUG": "false",
    "SECURE_HTTPS": "false",
    "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
    "CACHE_URL": "locmemcache://",
    "VAR_DIR": tempfile.mkdtemp(prefix="codesquare-test-var-"),
}
for _key, _value in _TEST_ENV.items():
    os.environ.setdefault(_key, _value)
