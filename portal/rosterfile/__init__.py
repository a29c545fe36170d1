"""Roster files, pure (no database, no cloud): read a unit's spreadsheet, map its columns,
decide each row's fate, and write the exports.

- ``read``: CSV/XLSX bytes to a ``Table`` (``RosterFileError`` for a file that cannot be read).
- ``columns``: which header means what (``map_headers``).
- ``rows``: the per-row ``Form``, the whole-file ``validate_table`` with duplicates, the digest.
- ``write``: CSV and ``.xlsx`` export writers.

The use-cases over them are ``portal.services.roster_imports`` and ``portal.services.exports``.
"""
