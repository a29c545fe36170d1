"""Ending a soldier's portal sessions: after a password change or reset, and when staff shut
the account (disable, discharge)."""

from __future__ import annotations

from portal.models import Soldier


def end_portal_sessions(soldier: Soldier) -> None:
    """Every portal session of the soldier ends at its next request.

    Django checks a session against a hash of the user's password field; the soldier's Django
    password is never usable (Keystone holds the real one), so a fresh unusable one changes the
    hash and nothing else. The view keeps the session that made a change (update_session_auth_hash).
    """
    user = soldier.user
    user.set_unusable_password()
    user.save(update_fields=["password"])
