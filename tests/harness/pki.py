"""Certificates and keys for the local control plane.

A throwaway CA signs the API server's serving certificate and the client
certificates of the admin, the controller manager and the scheduler; a separate RSA pair
signs service-account tokens. Everything is generated per run into the
control plane's data folder, so no key outlives the processes that use it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=2)


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM files on disk."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Every file the control plane's processes are started with."""

    ca: Pair
    apiserver: Pair
    admin: Pair
    controller_manager: Pair
    scheduler: Pair
    service_account_key: Path
    service_account_pub: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _issue(
    folder: Path,
    stem: str,
    *,
    subject: x509.Name,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    server_names: tuple[str, ...] = (),
    client: bool = False,
) -> tuple[Pair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    issuer_name, signing_key = (subject, key) if ca is None else (ca[0].subject, ca[1])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
    )
    if ca is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            True,
        )
    else:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), False)
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    if server_names:
        sans: list[x509.GeneralName] = []
        for name in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)

    cert = builder.sign(signing_key, hashes.SHA256())
    pair = Pair(cert=folder / f"{stem}.crt", key=folder / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(pair.key, key)
    return pair, cert, key


def generate(folder: Path, *, service_ip: str = "10.96.0.1") -> Pki:
    """Write a fresh CA, serving and client certificates and SA keys into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_pair, ca_cert, ca_key = _issue(folder, "ca", subject=_name("modelship-dev-ca"), ca=None)
    ca = (ca_cert, ca_key)

    server_names = (
        "127.0.0.1", "localhost", service_ip, "kubernetes", "kubernetes.default",
        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
    )
    apiserver, _, _ = _issue(
        folder, "apiserver", subject=_name("kube-apiserver"), ca=ca, server_names=server_names
    )
    admin, _, _ = _issue(
        folder, "admin", subject=_name("modelship-admin", "system:masters"), ca=ca, client=True
    )
    kcm, _, _ = _issue(
        folder, "controller-manager", subject=_name("system:kube-controller-manager"),
        ca=ca, client=True,
    )

    scheduler, _, _ = _issue(
        folder, "scheduler", subject=_name("system:kube-scheduler"), ca=ca, client=True,
    )

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa_key_path = folder / "sa.key"
    sa_pub_path = folder / "sa.pub"
    _write_key(sa_key_path, sa_key)
    sa_pub_path.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return Pki(
        ca=ca_pair, apiserver=apiserver, admin=admin, controller_manager=kcm, scheduler=scheduler,
        service_account_key=sa_key_path, service_account_pub=sa_pub_path,
    )
