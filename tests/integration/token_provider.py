"""An aiokafka token provider for SASL/OAUTHBEARER that gets its tokens with OAuth 2 client credentials.

Kafka's Java clients have this built in (``OAuthBearerLoginCallbackHandler``); aiokafka only asks
for an object whose ``token()`` returns a JWT, so this is that object: it posts the client's id
and secret to the identity provider's token endpoint (RFC 6749 4.4), keeps the access token, and
fetches a new one once 80 % of its lifetime has passed, like the Java client's default
``sasl.login.refresh.window.factor``. Nothing here knows about the local stack: it is meant to
move into the connector as it is.

The HTTP call uses urllib in a worker thread (``asyncio.to_thread``): the project has no HTTP
client dependency, and a token is fetched about once an hour.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Literal

from aiokafka.abc import AbstractTokenProvider

log = logging.getLogger(__name__)


class TokenError(RuntimeError):
    """The token endpoint could not be reached, refused the client, or answered nonsense.

    The message names the endpoint and the provider's ``error``/``error_description``; never the secret.
    """


class ClientCredentialsTokenProvider(AbstractTokenProvider):
    """Access tokens for one OAuth client, fetched when needed and reused until they are old.

    ``token_url``: the provider's token endpoint. ``scope``: space-separated scopes to ask for.
    ``audience``: sent as the ``audience`` parameter (Auth0, Okta and Keycloak-style providers use it
    to choose the token's ``aud``); other providers' parameters (``resource`` of RFC 8707...) go in
    ``extra_params``. ``ca_file``: a PEM bundle to trust for an HTTPS endpoint instead of the
    system's. ``client_auth``: ``"basic"`` (HTTP Basic, which every provider must accept) or
    ``"post"`` (id and secret in the form). ``refresh_ratio``: the share of a token's lifetime
    after which a new one is fetched; ``default_lifetime``: the lifetime assumed when the answer
    has no ``expires_in``.
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
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_url={self.token_url!r}, client_id={self.client_id!r})"

    async def token(self) -> str:
        """A token that is not old; one request to the endpoint at a time, however many connections ask."""
        async with self._lock:
            now = self._clock()
            if self._token is None or now >= self._refresh_at:
                try:
                    token, lifetime = await asyncio.to_thread(self.fetch)
                except TokenError as exc:
                    if self._token is None or now >= self._expires_at:
                        raise
                    # The old token still works: keep it, and try again at the next connection.
                    log.warning("could not refresh the OAuth token, using the current one: %s", exc)
                    return self._token
                self._token = token
                self._refresh_at = now + lifetime * self._refresh_ratio
                self._expires_at = now + lifetime
            return self._token

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
                             f"HTTP {exc.code} {_oauth_error(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TokenError(f"cannot reach token endpoint {self.token_url}: {reason}") from None
        return self._parse(body)

    def _parse(self, body: bytes) -> tuple[str, float]:
        try:
            answer = json.loads(body)
            token = answer["access_token"]
            lifetime = float(answer.get("expires_in") or self._default_lifetime)
        except (ValueError, KeyError, TypeError):
            raise TokenError(f"token endpoint {self.token_url} answered without an access_token") from None
        if not isinstance(token, str) or not token:
            raise TokenError(f"token endpoint {self.token_url} answered an empty access_token")
        if str(answer.get("token_type", "Bearer")).lower() != "bearer":
            raise TokenError(f"token endpoint {self.token_url} answered a {answer['token_type']!r} token, "
                             "not a Bearer token")
        return token, lifetime


def _oauth_error(body: bytes) -> str:
    """``error: error_description`` of an OAuth error answer (RFC 6749 5.2), or a bit of what came."""
    try:
        answer = json.loads(body)
        return ": ".join(str(answer[k]) for k in ("error", "error_description") if answer.get(k))
    except (ValueError, TypeError, AttributeError):
        return body[:200].decode(errors="replace")
