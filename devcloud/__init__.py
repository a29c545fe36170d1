"""devcloud: a local stand-in for OpenStack (Keystone v3, Nova v2.1, Neutron v2.0, Glance v2).

Run it with ``python -m devcloud --data-dir DIR``; tests start it with
``devcloud.testing.start_devcloud``. Standard library only; the portal never imports it.
"""
