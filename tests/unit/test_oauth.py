"""cdc/oauth.py without servers: when the client-credentials provider asks its endpoint again and
what it does when that fails, the token file read at every login, and what the providers tell the
operator after a failed login.

The HTTP exchange itself is tested against the loopback OAuth server (tests/integration/
test_kafka_auth.py and test_auth_options.py); here ``fetch`` is replaced and the clock is ours.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from cdc import oauth
from cdc.config import OAuthSettings
from cdc.oauth import ClientCredentialsTokenProvider, TokenError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def provider(clock: Clock, answers: list[tuple[str, float] | TokenError]) -> ClientCredentialsTokenProvider:
    p = ClientCredentialsTokenProvider("https://idp.example/token", "wpcdc", "s3cret", clock=clock)
    calls = iter(answers)

    def fetch() -> tuple[str, float]:
        answer = next(calls)
        if isinstance(answer, TokenError):
            raise answer
        return answer

    p.fetch = fetch  # type: ignore[method-assign]
    return p


async def test_a_token_is_reused_until_80_percent_of_its_lifetime() -> None:
    clock = Clock()
    p = provider(clock, [("one", 100.0), ("two", 100.0)])
    assert await p.token() == "one"
    clock.now += 79
    assert await p.token() == "one"
    clock.now += 1
    assert await p.token() == "two"


async def test_concurrent_connections_share_one_request() -> None:
    p = provider(Clock(), [("one", 100.0)])  # a second fetch would raise StopIteration
    assert await asyncio.gather(*(p.token() for _ in range(5))) == ["one"] * 5


async def test_a_failed_refresh_keeps_the_token_while_it_is_valid() -> None:
    clock = Clock()
    p = provider(clock, [("one", 100.0), TokenError("down"), TokenError("down"), ("two", 100.0)])
    assert await p.token() == "one"
    clock.now += 90
    assert await p.token() == "one"  # refresh failed, token still valid for 10 s
    clock.now += 10
    with pytest.raises(TokenError, match="down"):  # expired: nothing to fall back on
        await p.token()
    assert await p.token() == "two"


async def test_the_first_failure_is_raised() -> None:
    p = provider(Clock(), [TokenError("invalid_client")])
    with pytest.raises(TokenError, match="invalid_client"):
        await p.token()


def test_the_secret_stays_out_of_repr_and_settings_are_checked() -> None:
    p = ClientCredentialsTokenProvider("https://idp.example/token", "wpcdc", "s3cret")
    assert "s3cret" not in repr(p) and "wpcdc" in repr(p)
    with pytest.raises(ValueError, match="client_auth"):
        ClientCredentialsTokenProvider("u", "i", "s", client_auth="jwt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="refresh_ratio"):
        ClientCredentialsTokenProvider("u", "i", "s", refresh_ratio=0)


@pytest.mark.parametrize("body,message", [
    (b'{"access_token": "abc", "token_type": "Bearer", "expires_in": 60}', None),
    (b'{"access_token": "abc", "token_type": "bearer"}', None),
    (b'{"token_type": "Bearer"}', "without an access_token"),
    (b"<html>", "without an access_token"),
    (b'{"access_token": ""}', "empty access_token"),
    (b'{"access_token": "abc", "token_type": "mac"}', "not a Bearer token"),
])
def test_token_answers_are_checked(body: bytes, message: str | None) -> None:
    p = ClientCredentialsTokenProvider("https://idp.example/token", "wpcdc", "s3cret", default_lifetime=42)
    if message is None:
        token, lifetime = p._parse(body)  # noqa: SLF001
        assert token == "abc" and lifetime in (60, 42)
    else:
        with pytest.raises(TokenError, match=message):
            p._parse(body)  # noqa: SLF001


def jwt(**claims: object) -> str:
    """An unsigned JWT with ``claims`` (what the providers read; nothing here checks signatures)."""
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJub25lIn0.{part}."


def test_without_expires_in_the_lifetime_is_the_tokens_own_exp() -> None:
    p = ClientCredentialsTokenProvider("https://idp.example/token", "wpcdc", "s3cret", default_lifetime=42)
    token = jwt(sub="wpcdc", exp=time.time() + 600)
    _, lifetime = p._parse(json.dumps({"access_token": token}).encode())  # noqa: SLF001
    assert 590 < lifetime <= 600


def test_a_token_error_is_a_kafka_error_so_aiokafka_treats_it_as_a_failed_connection() -> None:
    """aiokafka's bootstrap and background reconnects catch KafkaError; anything else would escape them."""
    assert issubclass(TokenError, KafkaError)
    assert TokenError("token endpoint x refused").reason == "token endpoint x refused"


def test_the_provider_outlives_an_event_loop() -> None:
    """``wpcdc check`` runs asyncio.run more than once with the same provider."""
    p = provider(Clock(), [("one", 100.0)])
    assert asyncio.run(p.token()) == "one"
    assert asyncio.run(p.token()) == "one"


# --------------------------------------------------------------------------------- token file


async def test_the_token_file_is_read_again_at_every_login(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(jwt(sub="a", exp=time.time() + 600) + "\n")
    p = oauth.TokenFileProvider(str(path))
    first = await p.token()
    assert "\n" not in first
    path.write_text(jwt(sub="b", exp=time.time() + 600))  # the kubelet rotated it
    assert oauth.jwt_claims(await p.token())["sub"] == "b"
    path.write_text("opaque-token-not-a-jwt")  # any token: the broker decides
    assert await p.token() == "opaque-token-not-a-jwt"


@pytest.mark.parametrize("content,message", [
    (None, "cannot read OAuth token file .*: No such file"),
    ("", "is empty"),
    ("  \n", "is empty"),
    (jwt(sub="a", exp=1_000_000_000), r"expired at 2001-09-09T01:46:40Z: is whatever writes the file"),
])
async def test_a_token_file_without_a_usable_token_names_the_file(tmp_path: Path, content: str | None,
                                                                  message: str) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    p = oauth.TokenFileProvider(str(path))
    with pytest.raises(TokenError, match=message):
        await p.token()
    assert p.last_error is not None and p.last_token is None


# ------------------------------------------------------------------------ after a failed login


def test_the_hint_names_the_providers_failure_then_the_token_it_gave(tmp_path: Path) -> None:
    path = tmp_path / "token"
    settings = OAuthSettings(token_file=str(path))
    p = oauth.provider_for(settings)
    assert oauth.provider_for(OAuthSettings(token_file=str(path))) is p  # shared by every client
    assert oauth.login_hint(settings) is None  # no login tried

    with pytest.raises(TokenError):
        asyncio.run(p.token())
    hint = oauth.login_hint(settings)
    assert hint is not None and hint.startswith("no OAUTHBEARER token to log in with: cannot read OAuth token file")

    path.write_text(jwt(sub="wpcdc", aud="other-cluster", exp=time.time() + 100))
    asyncio.run(p.token())
    hint = oauth.login_hint(settings)
    assert hint is not None
    assert f"may have refused the OAUTHBEARER token from token file {path}" in hint
    assert "audience (aud) 'other-cluster', missing issuer (iss), expiry (exp) " in hint
    assert "(in 100 s)" in hint or "(in 99 s)" in hint
    assert "'Failed authentication' in the broker's log" in hint


def test_claims_are_described_for_the_operator() -> None:
    now = 2_000_000_000
    assert oauth.describe_claims(jwt(aud="k", iss="idp", exp=now - 5), now=now) == (
        "audience (aud) 'k', issuer (iss) 'idp', expiry (exp) 2033-05-18T03:33:15Z (5 s ago)")
    assert oauth.describe_claims("opaque") == "format (it is not a JWT, which brokers' validators expect)"
    assert oauth.describe_claims(jwt(sub="x")).endswith("missing expiry (exp)")


def test_settings_choose_the_provider() -> None:
    endpoint = oauth.provider_for(OAuthSettings(token_endpoint="https://idp.example/token", client_id="wpcdc",
                                                client_secret="s3cret", scope="kafka"))
    assert isinstance(endpoint, ClientCredentialsTokenProvider)
    assert endpoint.describe() == "token endpoint https://idp.example/token (client 'wpcdc')"
    assert "s3cret" not in repr(OAuthSettings(client_secret="s3cret"))
    with pytest.raises(ValueError, match="neither a token file nor a complete token endpoint"):
        oauth.provider_for(OAuthSettings(token_endpoint="https://idp.example/token"))
