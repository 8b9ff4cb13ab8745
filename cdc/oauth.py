"""SASL/OAUTHBEARER for aiokafka: where the connector's access tokens come from.

aiokafka asks its ``sasl_oauth_token_provider`` for a token every time it opens a connection and
has nothing like the Java client's login handler, so the two ways Kafka users get tokens are here:

* :class:`ClientCredentialsTokenProvider` posts a client id and secret to an identity provider's
  token endpoint (RFC 6749 4.4) and reuses the token until 80 % of its lifetime has passed, like
  the Java client's default ``sasl.login.refresh.window.factor``. A connection opened after that
  gets a fresh one; one already open keeps working until the broker closes it (aiokafka cannot
  re-authenticate), and the reconnection fetches a new token.
* :class:`TokenFileProvider` reads a token from a file at every login: a Kubernetes projected
  service-account token, or a workload-identity sidecar's, is rewritten in place before it expires.

Both raise :class:`TokenError` when they have no token to give, and both remember the last token
they gave and the last failure (:func:`login_hint`): aiokafka does not read the broker's refusal
of a token (RFC 7628's error challenge), so a refused login surfaces only later as a closed
connection, and the provider is then the one witness of what was sent.

The HTTP call uses urllib in a worker thread: the project has no HTTP client dependency, and a
token is fetched about once an hour.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import functools
import json
import logging
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError

if TYPE_CHECKING:
    from cdc.config import OAuthSettings

log = logging.getLogger(__name__)


class TokenError(KafkaConnectionError):
    """No token to log in with: the endpoint refused the client or could not be reached, or the
    token file is missing, empty or stale. The message names the endpoint or the file, never the
    secret.

    A KafkaConnectionError because it is raised inside aiokafka's connection setup: aiokafka then
    treats it as a failed connection (its bootstrap and its background reconnects catch Kafka's
    errors, and would let any other kind kill a background task).
    """

    @property
    def reason(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class TokenSource(AbstractTokenProvider):
    """A token provider that remembers what it last handed to Kafka, and its last failure."""

    def __init__(self) -> None:
        self.last_token: str | None = None
        self.last_error: TokenError | None = None

    def describe(self) -> str:
        """Where the tokens come from, for messages."""
        raise NotImplementedError

    async def token(self) -> str:
        try:
            token = await self._token()
        except TokenError as exc:
            self.last_error = exc
            raise
        self.last_token, self.last_error = token, None
        return token

    async def _token(self) -> str:
        raise NotImplementedError


class ClientCredentialsTokenProvider(TokenSource):
    """Access tokens for one OAuth client, fetched when needed and reused until they are old.

    ``token_url``: the provider's token endpoint. ``scope``: space-separated scopes to ask for.
    ``audience``: sent as the ``audience`` parameter (Auth0, Okta and Keycloak-style providers use it
    to choose the token's ``aud``); other providers' parameters (``resource`` of RFC 8707...) go in
    ``extra_params``. ``ca_file``: a PEM bundle to trust for an HTTPS endpoint instead of the
    system's. ``client_auth``: ``"basic"`` (HTTP Basic, which every provider must accept, and what
    the Java client sends) or ``"post"`` (id and secret in the form). ``refresh_ratio``: the share
    of a token's lifetime after which a new one is fetched; ``default_lifetime``: the lifetime
    assumed when neither the answer's ``expires_in`` nor the token's ``exp`` says.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        audience: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        ca_file: str | None = None,
        client_auth: Literal["basic", "post"] = "basic",
        refresh_ratio: float = 0.8,
        default_lifetime: float = 300.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if client_auth not in ("basic", "post"):
            raise ValueError(f"client_auth must be 'basic' or 'post', not {client_auth!r}")
        if not 0 < refresh_ratio <= 1:
            raise ValueError(f"refresh_ratio must be in (0, 1], not {refresh_ratio}")
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self._params = {"grant_type": "client_credentials",
                        **({"scope": scope} if scope else {}),
                        **({"audience": audience} if audience else {}),
                        **(extra_params or {})}
        self._ssl = ssl.create_default_context(cafile=ca_file) if ca_file else None
        self._client_auth = client_auth
        self._refresh_ratio = refresh_ratio
        self._default_lifetime = default_lifetime
        self._timeout = timeout
        self._clock = clock
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._token_value: str | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def describe(self) -> str:
        return f"token endpoint {self.token_url} (client {self.client_id!r})"

    def _loop_lock(self) -> asyncio.Lock:
        """One lock per event loop: the provider outlives ``asyncio.run`` (``check`` runs several)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    async def _token(self) -> str:
        """A token that is not old; one request to the endpoint at a time, however many connections ask."""
        async with self._loop_lock():
            now = self._clock()
            if self._token_value is None or now >= self._refresh_at:
                try:
                    token, lifetime = await asyncio.to_thread(self.fetch)
                except TokenError as exc:
                    if self._token_value is None or now >= self._expires_at:
                        raise
                    # The old token still works: keep it, and try again at the next connection.
                    log.warning("could not refresh the OAuth token, using the current one: %s", exc.reason)
                    return self._token_value
                self._token_value = token
                self._refresh_at = now + lifetime * self._refresh_ratio
                self._expires_at = now + lifetime
            return self._token_value

    def fetch(self) -> tuple[str, float]:
        """One client-credentials request: the access token and its lifetime in seconds (blocking)."""
        params = dict(self._params)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        if self._client_auth == "basic":
            # RFC 6749 2.3.1: id and secret are form-urlencoded before they are joined and encoded.
            pair = f"{urllib.parse.quote_plus(self.client_id)}:{urllib.parse.quote_plus(self._secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            params |= {"client_id": self.client_id, "client_secret": self._secret}
        request = urllib.request.Request(self.token_url, data=urllib.parse.urlencode(params).encode(),
                                         headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout, context=self._ssl) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise TokenError(f"token endpoint {self.token_url} refused client {self.client_id!r}: "
                             f"HTTP {exc.code} {_oauth_error(exc.read())}".rstrip()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TokenError(f"cannot reach token endpoint {self.token_url}: {reason}") from None
        return self._parse(body)

    def _parse(self, body: bytes) -> tuple[str, float]:
        try:
            answer = json.loads(body)
            token = answer["access_token"]
        except (ValueError, KeyError, TypeError):
            raise TokenError(f"token endpoint {self.token_url} answered without an access_token") from None
        if not isinstance(token, str) or not token:
            raise TokenError(f"token endpoint {self.token_url} answered an empty access_token")
        if str(answer.get("token_type", "Bearer")).lower() != "bearer":
            raise TokenError(f"token endpoint {self.token_url} answered a {answer['token_type']!r} token, "
                             "not a Bearer token")
        lifetime = _number(answer.get("expires_in"))
        if lifetime is None:
            exp = _number(jwt_claims(token).get("exp"))
            lifetime = exp - time.time() if exp is not None else None
        return token, lifetime if lifetime is not None and lifetime > 0 else self._default_lifetime


class TokenFileProvider(TokenSource):
    """The token in a file, read again at every login, so whoever rewrites it (the kubelet for a
    projected service-account token, a workload-identity agent) is always followed.

    A JWT whose ``exp`` has passed is refused here, naming the file: it means the writer stopped,
    and the broker would refuse it with no reason aiokafka could show.
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.path = path
        self._clock = clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r})"

    def describe(self) -> str:
        return f"token file {self.path}"

    async def _token(self) -> str:
        try:
            token = Path(self.path).read_text().strip()
        except OSError as exc:
            raise TokenError(f"cannot read OAuth token file {self.path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise TokenError(f"OAuth token file {self.path} is not text") from None
        if not token:
            raise TokenError(f"OAuth token file {self.path} is empty")
        exp = _number(jwt_claims(token).get("exp"))
        if exp is not None and exp <= self._clock():
            raise TokenError(f"the token in OAuth token file {self.path} expired at {_when(exp)}: is whatever "
                             "writes the file (the kubelet's projected token, a sidecar) still running?")
        return token


@functools.cache
def provider_for(settings: OAuthSettings) -> TokenSource:
    """The one provider of these settings in this process: every client (admin, consumers,
    producer, and their reconnections) shares its cached token instead of fetching its own."""
    if settings.token_file:
        return TokenFileProvider(settings.token_file)
    if not (settings.token_endpoint and settings.client_id and settings.client_secret):
        raise ValueError("OAuth settings name neither a token file nor a complete token endpoint")
    return ClientCredentialsTokenProvider(
        settings.token_endpoint, settings.client_id, settings.client_secret, scope=settings.scope,
        audience=settings.audience, ca_file=settings.ca_file)


def login_hint(settings: OAuthSettings) -> str | None:
    """What to tell the operator after Kafka failed under OAUTHBEARER, or None when no login was tried.

    When the provider failed, its reason (the endpoint's HTTP status, the file's problem). When it
    gave a token, that the broker may have refused it, with the claims a broker checks: aiokafka
    takes the broker's refusal for a successful login and only sees the connection close at its
    next request ("Unable to bootstrap", "Connection ... closed"), which says nothing of tokens.
    """
    provider = provider_for(settings)
    if provider.last_error is not None:
        return f"no OAUTHBEARER token to log in with: {provider.last_error.reason}"
    if provider.last_token is None:
        return None
    return (f"if Kafka closed the connection, the broker may have refused the OAUTHBEARER token from "
            f"{provider.describe()} (aiokafka does not read a broker's refusal): compare its "
            f"{describe_claims(provider.last_token)} with the listener's sasl.oauthbearer.expected.audience "
            "and expected.issuer, and look for 'Failed authentication' in the broker's log")


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, *unverified* (for diagnosis and expiry), or {} when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}


def describe_claims(token: str, now: float | None = None) -> str:
    """``audience (aud) 'x', missing issuer (iss), expiry (exp) 2025-… (in 3540 s)``, or why not."""
    claims = jwt_claims(token)
    if not claims:
        return "format (it is not a JWT, which brokers' validators expect)"
    parts = [f"{word} ({key}) {claims[key]!r}" if key in claims else f"missing {word} ({key})"
             for word, key in (("audience", "aud"), ("issuer", "iss"))]
    exp = _number(claims.get("exp"))
    if exp is None:
        parts.append("missing expiry (exp)")
    else:
        left = exp - (time.time() if now is None else now)
        parts.append(f"expiry (exp) {_when(exp)} ({f'in {left:.0f} s' if left > 0 else f'{-left:.0f} s ago'})")
    return ", ".join(parts)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _oauth_error(body: bytes) -> str:
    """``error: error_description`` of an OAuth error answer (RFC 6749 5.2), or a bit of what came."""
    try:
        answer = json.loads(body)
        return ": ".join(str(answer[k]) for k in ("error", "error_description") if answer.get(k))
    except (ValueError, TypeError, AttributeError):
        return body[:200].decode(errors="replace")
