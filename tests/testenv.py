"""Environment of the test process, loaded with `-p` so it is set before Django's settings load.

Tests run with DEBUG off (as production does) but over plain HTTP and with a throwaway key;
a developer's .env never leaks into a test run.
"""

import atexit
import os
import shutil
import tempfile

_VAR_DIR = tempfile.mkdtemp(prefix="codesquare-test-var-")
# whitenoise warns about a missing STATIC_ROOT on every request otherwise.
os.makedirs(os.path.join(_VAR_DIR, "staticfiles"))
atexit.register(shutil.rmtree, _VAR_DIR, ignore_errors=True)

TEST_ENV = {
    "READ_DOT_ENV": "false",
    "SECRET_KEY": "test-only-" + "q9Vx-2mLz" * 6,
    "DEBUG": "false",
    "SECURE_HTTPS": "false",
    "ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
    "CACHE_URL": "locmemcache://",
    "VAR_DIR": _VAR_DIR,
}
for _key, _value in TEST_ENV.items():
    os.environ.setdefault(_key, _value)
# Metrics files go under this process's own VAR_DIR (the settings' default), removed with it.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
