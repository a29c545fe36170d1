"""SSH public keys in OpenSSH's wire format, built with the standard library only.

They are structurally valid (what Nova and the portal parse: the type, the curve, the modulus
size), not usable keys: no test needs the private half.
"""

from __future__ import annotations

import base64
import secrets
import struct


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _mpint(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big")  # a leading zero keeps it positive
    return _string(raw)


def ed25519(comment: str = "soldier@laptop") -> str:
    blob = _string(b"ssh-ed25519") + _string(secrets.token_bytes(32))
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}".strip()


def rsa(bits: int = 3072, comment: str = "soldier@laptop") -> str:
    modulus = secrets.randbits(bits) | (1 << (bits - 1)) | 1
    blob = _string(b"ssh-rsa") + _mpint(65537) + _mpint(modulus)
    return f"ssh-rsa {base64.b64encode(blob).decode()} {comment}".strip()


def ecdsa(curve: str = "nistp256", comment: str = "soldier@laptop") -> str:
    size = {"nistp256": 32, "nistp384": 48, "nistp521": 66}[curve]
    point = b"\x04" + secrets.token_bytes(2 * size)
    name = f"ecdsa-sha2-{curve}".encode()
    blob = _string(name) + _string(curve.encode()) + _string(point)
    return f"{name.decode()} {base64.b64encode(blob).decode()} {comment}".strip()


PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBl0XkxDYEq8h3xRrpnJPs1WmjQ3eLBz4eZyvU2kTRyaAAAAJgZn5wGGZ+c\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
