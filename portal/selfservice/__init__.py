"""The soldier's pages at "/": cloud-account login, their VM live, SSH key, password.

``auth`` (login backends), ``access`` (the one helper that scopes ids to the logged-in soldier),
``cards`` (what a VM card shows, built from the mirror), ``forms``, ``views``, ``urls``.
"""
