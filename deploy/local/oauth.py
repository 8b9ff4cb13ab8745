#!/usr/bin/env python3
"""A loopback OAuth 2 authorization server for the local stack's OAUTHBEARER listener.

Kafka's ``OAuthBearerValidatorCallbackHandler`` checks each client's JWT against the keys an
identity provider publishes (JWKS); clients get their JWTs from that provider's token endpoint
with the client-credentials grant. We have no identity provider on our machines, so this script
is one, reduced to what a Kafka deployment touches:

    GET  /jwks.json   the public signing key (RFC 7517), for the broker
    POST /token       client credentials (RFC 6749 4.4) -> an RS256 access token (RFC 9068-ish)

It serves the same routes over HTTP and, with the Kafka listener's certificate, over HTTPS (so a
client's "trust this CA for the token endpoint" setting is tested too). Standard library only: it
runs under whatever python3 runs ``stack.py``, before the project's virtualenv exists. RSA
signatures come from ``openssl``, which the stack already needs for its certificates.

Usage: ``python3 oauth.py serve CONFIG.json`` (``stack.py`` writes the config and starts it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN_PATH = "/token"
JWKS_PATH = "/jwks.json"


class OAuthError(RuntimeError):
    """The signing key could not be made or used (openssl missing or failing)."""


# ------------------------------------------------------------------------------------ JWT pieces


def b64url(data: bytes) -> str:
    """Base64url without padding, the only encoding JOSE uses (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url_json(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def _b64url_uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def encode_jwt(header: Mapping[str, Any], claims: Mapping[str, Any],
               sign: Callable[[bytes], bytes] | None = None) -> str:
    """A compact JWS; with no ``sign`` an unsecured one (RFC 7519 6: empty signature part).

    ``header`` must name the algorithm that ``sign`` implements (``{"alg": "none"}`` without it).
    """
    signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}"
    signature = b64url(sign(signing_input.encode("ascii"))) if sign else ""
    return f"{signing_input}.{signature}"


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, *without* checking its signature (for inspection)."""
    header, claims, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(claims))


def unsecured_jwt(subject: str, lifetime: float = 3600, now: float | None = None,
                  **claims: Any) -> str:
    """What Kafka's default (unsecured) OAUTHBEARER validator accepts: ``alg: none``, ``sub``, ``exp``.

    Anyone can write one, which is why that validator is for development only.
    """
    issued = int(time.time() if now is None else now)
    body = {"sub": subject, "iat": issued, "exp": issued + int(lifetime), **claims}
    return encode_jwt({"alg": "none"}, body)


def rsa_jwk(n: int, e: int, kid: str | None = None) -> dict[str, str]:
    """The public half of an RSA key as a JWK (RFC 7518 6.3.1) for RS256 signatures."""
    jwk = {"kty": "RSA", "n": _b64url_uint(n), "e": _b64url_uint(e)}
    return {**jwk, "kid": kid or jwk_thumbprint(jwk), "use": "sig", "alg": "RS256"}


def jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 thumbprint of an RSA JWK: a key id derived from the key, so it changes with it."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def jwks_document(*jwks: Mapping[str, str]) -> dict[str, list[Mapping[str, str]]]:
    return {"keys": list(jwks)}


def access_token_claims(*, issuer: str, subject: str, audience: str | list[str], scope: str,
                        lifetime: int, now: float) -> dict[str, Any]:
    """The claims Kafka's broker validator requires (``sub``, ``iat``, ``exp``) and checks (``aud``, ``iss``)."""
    issued = int(now)
    return {"iss": issuer, "sub": subject, "aud": audience, "scope": scope, "iat": issued,
            "exp": issued + lifetime, "client_id": subject}


# ------------------------------------------------------------------------------- RSA via openssl


class RsaKey:
    """An RSA private key in a PEM file, used through the ``openssl`` command.

    The standard library has no RSA; openssl is on every machine that runs the stack (it makes
    the certificates), so signing shells out to ``openssl dgst -sha256 -sign`` (RSASSA-PKCS1-v1_5
    with SHA-256, which is exactly JOSE's RS256).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        n, e = self._numbers()
        self.jwk = rsa_jwk(n, e)
        self.kid = self.jwk["kid"]

    @classmethod
    def create(cls, path: Path, bits: int = 2048) -> RsaKey:
        """Load the key at ``path``, generating it first if it does not exist."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}", "-out", str(tmp))
            tmp.chmod(0o600)
            tmp.rename(path)
        return cls(path)

    def _numbers(self) -> tuple[int, int]:
        text = _openssl("rsa", "-in", str(self.path), "-noout", "-text", "-modulus").decode()
        modulus = re.search(r"^Modulus=([0-9A-Fa-f]+)$", text, re.M)
        exponent = re.search(r"^publicExponent:\s*(\d+)", text, re.M)
        if not (modulus and exponent):
            raise OAuthError(f"cannot read the RSA numbers of {self.path}")
        return int(modulus.group(1), 16), int(exponent.group(1))

    def sign(self, data: bytes) -> bytes:
        return _openssl("dgst", "-sha256", "-sign", str(self.path), input=data)

    def jwt(self, claims: Mapping[str, Any], kid: str | None = None) -> str:
        """An RS256 JWT; ``kid`` defaults to this key's own id (override it to forge one)."""
        return encode_jwt({"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}, claims, self.sign)


def _openssl(*args: str, input: bytes | None = None) -> bytes:
    openssl = shutil.which("openssl")
    if not openssl:
        raise OAuthError("openssl not found: install Debian's openssl")
    proc = subprocess.run([openssl, *args], input=input, capture_output=True)
    if proc.returncode != 0:
        raise OAuthError(f"openssl {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


# ----------------------------------------------------------------------------------- the server


class Issuer:
    """Decides what a token request gets; the HTTP handler only parses and answers."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.key = RsaKey.create(Path(config["signing_key"]))
        self.issuer: str = config["issuer"]
        self.audience: str = config["audience"]
        self.scope: str = config.get("scope", "")
        self.lifetime = int(config.get("lifetime", 3600))
        self.clients: dict[str, str] = dict(config["clients"])

    def authenticate(self, client_id: str, secret: str) -> bool:
        expected = self.clients.get(client_id)
        return expected is not None and hmac.compare_digest(expected.encode(), secret.encode())

    def token(self, client_id: str, form: Mapping[str, str]) -> dict[str, Any]:
        """The token response (RFC 6749 5.1). ``audience`` in the form asks for another audience,
        as Auth0 and others allow; the broker must refuse such a token."""
        scope = form.get("scope", self.scope)
        claims = access_token_claims(issuer=self.issuer, subject=client_id,
                                     audience=form.get("audience", self.audience), scope=scope,
                                     lifetime=self.lifetime, now=time.time())
        return {"access_token": self.key.jwt(claims), "token_type": "Bearer",
                "expires_in": self.lifetime, "scope": scope}


def client_credentials(headers: Mapping[str, str], form: Mapping[str, str]) -> tuple[str, str] | None:
    """The client's id and secret from HTTP Basic (RFC 6749 2.3.1: each form-urlencoded) or the form."""
    auth = headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            return None
        return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    return None


def make_handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "wpcdc-local-oauth"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == JWKS_PATH:
                self._answer(200, jwks_document(issuer.key.jwk))
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != TOKEN_PATH:
                self._answer(404, {"error": "not_found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode(errors="replace")
            form = {k: v[-1] for k, v in urllib.parse.parse_qs(body, keep_blank_values=True).items()}
            credentials = client_credentials(self.headers, form)
            if credentials is None or not issuer.authenticate(*credentials):
                self._answer(401, {"error": "invalid_client"},
                             {"WWW-Authenticate": 'Basic realm="wpcdc-local-oauth"'})
            elif form.get("grant_type") != "client_credentials":
                self._answer(400, {"error": "unsupported_grant_type"})
            else:
                self._answer(200, issuer.token(credentials[0], form))

        def _answer(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] = {}) -> None:  # noqa: B006
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


class _TlsServer(ThreadingHTTPServer):
    """HTTPS whose handshakes happen in the request's thread, so one stalled client cannot block
    the accept loop (wrapping the listening socket would handshake inside ``accept``)."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:  # a port probe, or a client that does not trust us: its problem, not ours
            return
        super().finish_request(tls, client_address)


def serve(config: Mapping[str, Any]) -> None:
    """Serve HTTP on ``port`` and HTTPS on ``tls_port`` until the process is killed."""
    issuer = Issuer(config)
    handler = make_handler(issuer)
    plain = ThreadingHTTPServer(("127.0.0.1", int(config["port"])), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(config["cert"], config["cert_key"])
    tls = _TlsServer(("127.0.0.1", int(config["tls_port"])), handler, context)
    threading.Thread(target=tls.serve_forever, name="https", daemon=True).start()
    print(f"oauth: kid {issuer.key.kid}, http {config['port']}, https {config['tls_port']}", flush=True)
    plain.serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "serve":
        print(__doc__, file=sys.stderr)
        return 2
    serve(json.loads(Path(argv[2]).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
