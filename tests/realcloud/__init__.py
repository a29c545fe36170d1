"""A real, small OpenStack from PyPI on loopback, as a test target (see README.md)."""
