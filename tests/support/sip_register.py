"""A minimal SIP REGISTER client with digest auth, over raw UDP from any loopback address.

Enough to play a password guesser (or the rightful phone) from a chosen source address:
one REGISTER, answered 401 with a challenge, answered again with the digest. Returns the
final status code, or 0 when nothing answered (a dropped request).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _request(
    server: tuple[str, int], local: tuple[str, int], user: str, call_id: str, cseq: int, auth: str
) -> bytes:
    host = f"{server[0]}:{server[1]}"
    lines = [
        f"REGISTER sip:{host} SIP/2.0",
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{host}>;tag={secrets.token_hex(4)}",
        f"To: <sip:{user}@{host}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{user}@{local[0]}:{local[1]}>",
        "Expires: 60",
    ]
    if auth:
        lines.append(auth)
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def _final(sock: socket.socket) -> tuple[int, str]:
    while True:
        data = sock.recv(65535).decode(errors="replace")
        m = re.match(r"SIP/2\.0 (\d{3})", data)
        if m and int(m.group(1)) >= 200:
            return int(m.group(1)), data


def register(server: tuple[str, int], source: str, user: str, password: str, timeout: float = 2.0) -> int:
    """REGISTER `user` from `source` (any 127.0.0.x); the final status code, 0 for no answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        local = sock.getsockname()
        call_id = secrets.token_hex(12)
        try:
            sock.sendto(_request(server, local, user, call_id, 1, ""), server)
            status, text = _final(sock)
            if status != 401:
                return status
            challenge = re.search(r"^WWW-Authenticate:\s*Digest\s+(.*)$", text, re.M | re.I)
            assert challenge, text
            params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge.group(1)))
            uri = f"sip:{server[0]}:{server[1]}"
            ha1 = _md5(f"{user}:{params['realm']}:{password}")
            ha2 = _md5(f"REGISTER:{uri}")
            cnonce, nc = secrets.token_hex(8), "00000001"
            fields = [
                f'username="{user}"',
                f'realm="{params["realm"]}"',
                f'nonce="{params["nonce"]}"',
                f'uri="{uri}"',
                "algorithm=MD5",
            ]
            if "qop" in params:
                digest = _md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
                fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
            else:
                digest = _md5(f"{ha1}:{params['nonce']}:{ha2}")
            fields.append(f'response="{digest}"')
            if "opaque" in params:
                fields.append(f'opaque="{params["opaque"]}"')
            sock.sendto(
                _request(server, local, user, call_id, 2, "Authorization: Digest " + ", ".join(fields)),
                server,
            )
            return _final(sock)[0]
        except TimeoutError:
            return 0
