#!/usr/bin/env python3
"""Makes a NATS user NKEY once and prints its public key.

    nkey.py SEED_FILE     creates SEED_FILE (mode 0600) with a new user seed if it does not exist,
                          then prints the seed's public key (U...), which goes in nats-server's
                          `authorization { users = [ {nkey: U...} ] }`

An NKEY is an Ed25519 key pair. Its seed file holds `SU...`: base32 (no padding) of two prefix
bytes (seed, user), the 32-byte Ed25519 seed and a CRC-16/XMODEM of the rest, little-endian; the
public key is `U...`: base32 of the user prefix byte, the 32-byte public key and the CRC. This is
the encoding of github.com/nats-io/nkeys, which nats-server and async-nats read. Only the
`cryptography` package is needed (pinned in scripts/stack.sh); the seed never leaves its file.
"""

import base64
import os
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PREFIX_SEED = 18 << 3  # 'S'
PREFIX_USER = 20 << 3  # 'U'


def crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def encode(raw: bytes) -> str:
    raw += crc16(raw).to_bytes(2, "little")
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def decode_seed(text: str) -> bytes:
    text = text.strip()
    raw = base64.b32decode(text + "=" * (-len(text) % 8))
    body, checksum = raw[:-2], raw[-2:]
    if crc16(body).to_bytes(2, "little") != checksum:
        raise ValueError("bad checksum")
    expected = bytes([PREFIX_SEED | (PREFIX_USER >> 5), (PREFIX_USER & 31) << 3])
    if body[:2] != expected or len(body) != 34:
        raise ValueError("not a user seed")
    return body[2:]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: nkey.py SEED_FILE", file=sys.stderr)
        return 2
    path = sys.argv[1]
    if not os.path.exists(path):
        seed = os.urandom(32)
        text = encode(bytes([PREFIX_SEED | (PREFIX_USER >> 5), (PREFIX_USER & 31) << 3]) + seed)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(text + "\n")
    with open(path, encoding="ascii") as file:
        try:
            seed = decode_seed(file.read())
        except ValueError as err:
            print(f"{path}: not a NATS user seed ({err})", file=sys.stderr)
            return 1
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    print(encode(bytes([PREFIX_USER]) + raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
