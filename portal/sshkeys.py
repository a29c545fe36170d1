"""SSH public keys pasted by soldiers: which ones the portal accepts, and private keys caught early.

Pure: no Django request, no cloud. ``parse_public_key`` reads OpenSSH's one-line form
(``type base64 comment``), decodes the key blob in SSH's wire format (RFC 4253 §6.6, RFC 5656
§3.1, RFC 8709) and checks the type and size. A private key pasted by mistake raises
``PrivateKeyPasted`` before any part of it is kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from django.utils.translation import gettext as _

MIN_RSA_BITS = 3072
ECDSA_CURVES = {"nistp256": (256, 65), "nistp384": (384, 97), "nistp521": (521, 133)}
ACCEPTED_TYPES = ("ssh-ed25519", "ssh-rsa", *(f"ecdsa-sha2-{c}" for c in ECDSA_CURVES))
MAX_COMMENT = 200

_PRIVATE_MARKERS = (
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"),
    re.compile(r"PuTTY-User-Key-File-\d"),
    # The body of an OpenSSH private key ("openssh-key-v1\0"), pasted without its armour lines.
    re.compile(r"b3BlbnNzaC1rZXktdjE"),
)


class PublicKeyError(ValueError):
    """The text is not an acceptable public key; ``message`` says why, for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PrivateKeyPasted(PublicKeyError):
    """The text is (or contains) a private key: refuse it and keep none of it."""


@dataclass(frozen=True)
class PublicKey:
    key_type: str
    blob: bytes
    bits: int
    comment: str = ""

    @property
    def openssh(self) -> str:
        """The key as one ``authorized_keys`` line, the form Nova imports."""
        line = f"{self.key_type} {base64.b64encode(self.blob).decode()}"
        return f"{line} {self.comment}" if self.comment else line

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` as ``ssh-keygen -l`` prints it."""
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    @property
    def short_id(self) -> str:
        """Ten hex digits of the key's hash: names its key pairs in the cloud."""
        return hashlib.sha256(self.blob).hexdigest()[:10]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def string(self) -> bytes:
        if self.pos + 4 > len(self.data):
            raise ValueError("truncated")
        (length,) = struct.unpack(">I", self.data[self.pos : self.pos + 4])
        start = self.pos + 4
        if length > len(self.data) - start:
            raise ValueError("truncated")
        self.pos = start + length
        return self.data[start : self.pos]

    def mpint(self) -> int:
        raw = self.string()
        if raw and raw[0] & 0x80:
            raise ValueError("negative")
        return int.from_bytes(raw, "big")

    def done(self) -> bool:
        return self.pos == len(self.data)


def looks_private(text: str) -> bool:
    return any(marker.search(text) for marker in _PRIVATE_MARKERS)


def _invalid() -> PublicKeyError:
    return PublicKeyError(
        _(
            "This is not an SSH public key. Paste the one line of your .pub file, "
            "e.g. the contents of ~/.ssh/id_ed25519.pub."
        )
    )


def _bits(key_type: str, reader: _Reader) -> int:
    if key_type == "ssh-ed25519":
        if len(reader.string()) != 32:
            raise ValueError("ed25519 keys are 32 bytes")
        return 256
    if key_type == "ssh-rsa":
        exponent = reader.mpint()
        modulus = reader.mpint()
        if exponent < 3 or exponent % 2 == 0 or modulus % 2 == 0:
            raise ValueError("not an RSA key")
        return modulus.bit_length()
    curve = key_type.removeprefix("ecdsa-sha2-")
    bits, point_length = ECDSA_CURVES[curve]
    if reader.string().decode("ascii", "replace") != curve:
        raise ValueError("curve does not match the type")
    point = reader.string()
    if len(point) != point_length or point[0] != 4:
        raise ValueError("not an uncompressed point on the curve")
    return bits


def parse_public_key(text: str) -> PublicKey:
    """The one OpenSSH public key in ``text``, or ``PublicKeyError`` saying what is wrong."""
    if looks_private(text):
        raise PrivateKeyPasted(
            _(
                "This is a PRIVATE key. It was not saved, and it must stay on your computer. "
                "Paste the public key instead: the file that ends in .pub. If you pasted "
                "this private key anywhere else, make a new key pair."
            )
        )
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        raise _invalid()
    if len(lines) > 1:
        raise PublicKeyError(_("Paste one key only, on a single line."))
    parts = lines[0].split(None, 2)
    if len(parts) < 2:
        raise _invalid()
    key_type, encoded = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) > 2 else ""
    if key_type not in ACCEPTED_TYPES:
        if key_type.startswith(("ssh-", "ecdsa-", "sk-")):
            raise PublicKeyError(
                _(
                    "%(type)s keys are not accepted. Use ssh-ed25519 (recommended), "
                    "ecdsa-sha2-nistp256/384/521, or ssh-rsa of at least %(bits)s bits."
                )
                % {"type": key_type, "bits": MIN_RSA_BITS}
            )
        raise _invalid()
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid() from exc
    reader = _Reader(blob)
    try:
        if reader.string().decode("ascii", "replace") != key_type:
            raise ValueError("type inside the key differs")
        bits = _bits(key_type, reader)
        if not reader.done():
            raise ValueError("trailing data")
    except ValueError as exc:
        raise PublicKeyError(
            _("The key is damaged (it was probably cut off while copying); copy it again.")
        ) from exc
    if key_type == "ssh-rsa" and bits < MIN_RSA_BITS:
        raise PublicKeyError(
            _(
                "This RSA key has %(bits)s bits; at least %(min)s are needed. Make a new one "
                "with: ssh-keygen -t ed25519"
            )
            % {"bits": bits, "min": MIN_RSA_BITS}
        )
    comment = "".join(ch for ch in comment if ch.isprintable())[:MAX_COMMENT]
    return PublicKey(key_type=key_type, blob=blob, bits=bits, comment=comment)
