"""When the client-credentials token provider asks its endpoint again, and what it does when that fails.

The HTTP exchange itself is tested against the loopback OAuth server (tests/integration/
test_kafka_auth.py); here ``fetch`` is replaced and the clock is ours.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.token_provider import ClientCredentialsTokenProvider, TokenError


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
