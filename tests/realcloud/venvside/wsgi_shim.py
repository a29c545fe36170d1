"""Serve an OpenStack WSGI module under gunicorn; this file runs inside the real cloud's venv.

Keystone, Nova, Placement and Neutron hand `sys.argv` to oslo.config when their WSGI module is
imported, and oslo.config rejects gunicorn's own options ("unrecognized arguments"). Clearing
the arguments before the import is the whole job of this module. The module to serve is named
by REALCLOUD_WSGI_MODULE (e.g. `keystone.wsgi.api`), so one shim serves every service.
"""

import importlib
import os
import sys

sys.argv = sys.argv[:1]
application = importlib.import_module(os.environ["REALCLOUD_WSGI_MODULE"]).application
