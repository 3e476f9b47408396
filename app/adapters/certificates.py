"""The self-signed certificate for WebRTC: Asterisk's TLS websocket (wss) and DTLS-SRTP.

Generated on first start into ``<var>/tls/`` (key mode 0600, never committed) and reused
until it is close to expiry or no longer names every address browsers use to reach it.
A browser on another machine must trust it once (see README, "Browser softphone").
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

VALID_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _wanted_names(hosts: Iterable[str]) -> tuple[set[IpAddress], set[str]]:
    ips: set[IpAddress] = {ipaddress.ip_address("127.0.0.1")}
    dns = {"localhost"}
    for host in hosts:
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            dns.add(host)
            continue
        if not addr.is_unspecified:
            ips.add(addr)
    return ips, dns


def _usable(files: CertFiles, hosts: Iterable[str], now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    except (OSError, ValueError):
        return False
    if cert.public_key() != key.public_key():
        return False
    if cert.not_valid_after_utc - RENEW_BEFORE < now:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    ips, dns = _wanted_names(hosts)
    return ips <= set(san.get_values_for_type(x509.IPAddress)) and dns <= set(
        san.get_values_for_type(x509.DNSName)
    )


def ensure_certificate(var_dir: Path, hosts: Iterable[str], now: dt.datetime | None = None) -> CertFiles:
    """The certificate and key in ``<var>/tls/``, made (or remade) when missing or unfit.

    ``hosts``: the addresses and names browsers use for Asterisk's wss listener; 127.0.0.1
    and localhost are always included. An unspecified address (0.0.0.0) adds nothing.
    """
    now = now or dt.datetime.now(dt.UTC)
    hosts = list(hosts)
    tls = var_dir / "tls"
    files = CertFiles(tls / "webrtc.crt", tls / "webrtc.key")
    if _usable(files, hosts, now):
        return files
    tls.mkdir(parents=True, exist_ok=True)
    os.chmod(tls, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    ips, dns = _wanted_names(hosts)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lianluo"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Lianluo WebRTC on {socket.gethostname()}"[:64]),
        ]
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(dns)]
    sans += [x509.IPAddress(ip) for ip in sorted(ips, key=str)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(files.key, key_pem, 0o600)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    log.info(
        "generated the WebRTC certificate %s for %s (SHA-256 %s)",
        files.cert,
        ", ".join([*sorted(dns), *sorted(map(str, ips))]),
        cert.fingerprint(hashes.SHA256()).hex(":").upper(),
    )
    return files


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)  # an old tmp file keeps its mode through O_CREAT
    os.replace(tmp, path)
