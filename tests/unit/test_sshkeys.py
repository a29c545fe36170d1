"""Which SSH public keys the portal accepts, and private keys caught before anything keeps them."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import translation

from portal.sshkeys import PrivateKeyPasted, PublicKeyError, parse_public_key
from tests import sshkeys


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


def test_it_accepts_ed25519_ecdsa_and_large_rsa_keys() -> None:
    ed = parse_public_key(sshkeys.ed25519("me@laptop"))
    assert (ed.key_type, ed.bits, ed.comment) == ("ssh-ed25519", 256, "me@laptop")
    for curve, bits in (("nistp256", 256), ("nistp384", 384), ("nistp521", 521)):
        key = parse_public_key(sshkeys.ecdsa(curve))
        assert (key.key_type, key.bits) == (f"ecdsa-sha2-{curve}", bits)
    assert parse_public_key(sshkeys.rsa(3072)).bits == 3072
    assert parse_public_key(sshkeys.rsa(4096)).bits == 4096


def test_the_key_is_kept_as_one_line_with_an_openssh_fingerprint() -> None:
    text = sshkeys.ed25519("me@laptop")
    key = parse_public_key("\n  " + text + "  \n")
    assert key.openssh == text
    blob = base64.b64decode(text.split()[1])
    expected = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert key.fingerprint == f"SHA256:{expected}"
    assert len(key.short_id) == 10


def test_it_refuses_rsa_keys_under_3072_bits() -> None:
    with pytest.raises(PublicKeyError, match="2048 bits; at least 3072"):
        parse_public_key(sshkeys.rsa(2048))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "ssh-ed25519",
        "ssh-ed25519 not-base64!!",
        'command="ls" ssh-ed25519 AAAA',
    ],
)
def test_it_refuses_what_is_not_a_public_key(text: str) -> None:
    with pytest.raises(PublicKeyError):
        parse_public_key(text)


def test_it_refuses_other_key_types_by_name() -> None:
    dss = "ssh-dss " + base64.b64encode(b"\x00\x00\x00\x07ssh-dss").decode()
    with pytest.raises(PublicKeyError, match="ssh-dss keys are not accepted"):
        parse_public_key(dss)


def test_it_refuses_a_key_whose_blob_is_cut_off_or_of_another_type() -> None:
    text = sshkeys.ed25519()
    kind, blob, _comment = text.split()
    raw = base64.b64decode(blob)
    cut = base64.b64encode(raw[:-5]).decode()
    with pytest.raises(PublicKeyError, match="damaged"):
        parse_public_key(f"{kind} {cut}")
    with pytest.raises(PublicKeyError, match="damaged"):
        parse_public_key(f"ssh-rsa {blob}")


def test_it_refuses_two_keys_at_once() -> None:
    with pytest.raises(PublicKeyError, match="one key only"):
        parse_public_key(sshkeys.ed25519() + "\n" + sshkeys.ed25519())


@pytest.mark.parametrize(
    "text",
    [
        sshkeys.PRIVATE_KEY,
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n",
        sshkeys.PRIVATE_KEY.splitlines()[1],  # the body without its armour
    ],
)
def test_it_recognises_a_private_key_pasted_by_mistake(text: str) -> None:
    with pytest.raises(PrivateKeyPasted, match="PRIVATE key"):
        parse_public_key(text)


@pytest.mark.parametrize(("kind", "bits"), [("ed25519", 256), ("ecdsa", 384), ("rsa", 3072)])
def test_keys_made_by_ssh_keygen_parse_with_its_fingerprint(
    tmp_path: Path, kind: str, bits: int
) -> None:
    path = tmp_path / "id"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-b", str(bits), "-N", "", "-C", "c", "-f", str(path)],
        check=True,
    )
    key = parse_public_key(path.with_suffix(".pub").read_text())
    assert key.bits == bits
    printed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(path.with_suffix(".pub"))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert key.fingerprint in printed
    with pytest.raises(PrivateKeyPasted):
        parse_public_key(path.read_text())
