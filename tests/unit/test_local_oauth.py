"""The loopback OAuth server's JWT and JWKS pieces (deploy/local/oauth.py), without a server.

The RS256 check at the end does by hand what the broker does with the JWKS: it takes ``n`` and
``e`` from the published JWK and checks the token's signature with them, so a JWKS that does not
match the signing key fails here rather than as a refused login.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

import oauth

# RFC 7638 3.1: the example RSA key (RFC 7517 A.1) and its SHA-256 thumbprint.
RFC7638_N = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZ"
             "CiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZ"
             "gnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIq"
             "bw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
# EMSA-PKCS1-v1_5 (RFC 8017 9.2): the DER DigestInfo prefix for SHA-256.
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def test_b64url_has_no_padding_and_round_trips() -> None:
    for data in (b"", b"a", b"ab", b"abc", bytes(range(256))):
        text = oauth.b64url(data)
        assert "=" not in text and "+" not in text and "/" not in text
        assert oauth.b64url_decode(text) == data


def test_an_unsecured_jwt_has_an_empty_signature_and_the_claims_kafka_needs() -> None:
    token = oauth.unsecured_jwt("wpcdc", lifetime=600, now=1_000, scope="kafka")
    assert token.endswith(".") and token.count(".") == 2
    header, claims = oauth.decode_jwt(token)
    assert header == {"alg": "none"}
    assert claims == {"sub": "wpcdc", "iat": 1_000, "exp": 1_600, "scope": "kafka"}


def test_the_jwk_thumbprint_is_rfc_7638s() -> None:
    n = int.from_bytes(oauth.b64url_decode(RFC7638_N), "big")
    jwk = oauth.rsa_jwk(n, 65537)
    assert jwk["n"] == RFC7638_N and jwk["e"] == "AQAB"
    assert jwk["kid"] == oauth.jwk_thumbprint(jwk) == RFC7638_THUMBPRINT
    assert oauth.rsa_jwk(n, 65537, kid="mine")["kid"] == "mine"
    assert oauth.jwks_document(jwk) == {"keys": [jwk]}


def test_access_token_claims() -> None:
    claims = oauth.access_token_claims(issuer="idp", subject="client", audience="kafka", scope="a b",
                                       lifetime=3600, now=1_000.7)
    assert claims == {"iss": "idp", "sub": "client", "aud": "kafka", "scope": "a b", "iat": 1_000,
                      "exp": 4_600, "client_id": "client"}


def test_an_rs256_token_verifies_with_the_published_jwk(tmp_path: Path) -> None:
    key = oauth.RsaKey.create(tmp_path / "signing.key")
    assert (tmp_path / "signing.key").stat().st_mode & 0o077 == 0
    token = key.jwt({"sub": "wpcdc"})
    header, claims = oauth.decode_jwt(token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": key.kid} and claims == {"sub": "wpcdc"}

    signing_input, signature = token.rsplit(".", 1)
    n = int.from_bytes(oauth.b64url_decode(key.jwk["n"]), "big")
    e = int.from_bytes(oauth.b64url_decode(key.jwk["e"]), "big")
    size = (n.bit_length() + 7) // 8
    encoded = pow(int.from_bytes(oauth.b64url_decode(signature), "big"), e, n).to_bytes(size, "big")
    digest = hashlib.sha256(signing_input.encode()).digest()
    padding = b"\xff" * (size - 3 - len(SHA256_DIGEST_INFO) - len(digest))
    assert encoded == b"\x00\x01" + padding + b"\x00" + SHA256_DIGEST_INFO + digest

    assert oauth.RsaKey.create(tmp_path / "signing.key").kid == key.kid  # loaded, not made again
    other = oauth.RsaKey.create(tmp_path / "other.key")
    assert other.kid != key.kid
    assert oauth.decode_jwt(other.jwt({}, kid=key.kid))[0]["kid"] == key.kid


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("headers,form,expected", [
    (_basic("wpcdc", "s3cret"), {}, ("wpcdc", "s3cret")),
    (_basic("a%3Ab", "x+y%25"), {}, ("a:b", "x y%")),  # RFC 6749 2.3.1: each part form-urlencoded
    (_basic("wpcdc", "pw:with:colons"), {}, ("wpcdc", "pw:with:colons")),
    ({}, {"client_id": "wpcdc", "client_secret": "s3cret"}, ("wpcdc", "s3cret")),
    ({}, {"client_id": "wpcdc"}, None),
    ({"Authorization": "Basic not-base64!"}, {}, None),
    ({"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}, {}, None),
    ({"Authorization": "Bearer abc"}, {}, None),
])
def test_client_credentials_come_from_basic_auth_or_the_form(
        headers: dict[str, str], form: dict[str, str], expected: tuple[str, str] | None) -> None:
    assert oauth.client_credentials(headers, form) == expected


def test_the_issuer_checks_secrets_and_honours_a_requested_audience(tmp_path: Path) -> None:
    issuer = oauth.Issuer({"signing_key": str(tmp_path / "k.pem"), "issuer": "idp", "audience": "kafka",
                           "scope": "kafka", "lifetime": 60, "clients": {"wpcdc": "s3cret"}})
    assert issuer.authenticate("wpcdc", "s3cret")
    assert not issuer.authenticate("wpcdc", "s3cret ") and not issuer.authenticate("other", "s3cret")
    answer = issuer.token("wpcdc", {"grant_type": "client_credentials"})
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 60
    claims = oauth.decode_jwt(answer["access_token"])[1]
    assert (claims["aud"], claims["iss"], claims["sub"], claims["scope"]) == ("kafka", "idp", "wpcdc", "kafka")
    claims = oauth.decode_jwt(issuer.token("wpcdc", {"audience": "else", "scope": "x"})["access_token"])[1]
    assert (claims["aud"], claims["scope"]) == ("else", "x")
