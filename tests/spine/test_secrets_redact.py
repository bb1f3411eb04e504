"""The one redactor: configured secrets, remembered run-time credentials, credential-named
parameters, in every form a URL, HTML or JSON gives them."""

from __future__ import annotations

import pytest

from alertcast.secrets import RUNTIME_MAX, Secrets


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("/cgi-bin/x?access_token=T0k_9-a&b=1", "/cgi-bin/x?access_token=***&b=1"),
        (
            "send?access_token=t&amp;timestamp=17&amp;sign=ab%2Bc%3D",
            "send?access_token=***&amp;timestamp=17&amp;sign=***",
        ),
        ("webhook/send?key=693a91f6-7x", "webhook/send?key=***"),
        (
            "?secret=s1&token=t1&signature=s2&password=p",
            "?secret=***&token=***&signature=***&password=***",
        ),
        (
            "appid=wx1&app_secret=v&api_key=k&msg_signature=m",
            "appid=wx1&app_secret=***&api_key=***&msg_signature=***",
        ),
        (
            "u=https%3A%2F%2Fh%3Faccess_token%3DT1%26a%3Db",
            "u=https%3A%2F%2Fh%3Faccess_token%3D***%26a%3Db",
        ),
        ('{"url":"http:\\/\\/h\\/p?sign=a\\/b&x=1"}', '{"url":"http:\\/\\/h\\/p?sign=***&x=1"}'),
        (
            '{"access_token": "T1", "sign":"S1", "ok": "v"}',
            '{"access_token": "***", "sign":"***", "ok": "v"}',
        ),
        ("Authorization: Bearer eyJh.bc-d_e", "Authorization: Bearer ***"),
        ("retried with bearer eyJh.bc", "retried with bearer ***"),
        (
            "monkey=1&sign_type=sha&timestamp=17&nonce=5",
            "monkey=1&sign_type=sha&timestamp=17&nonce=5",
        ),
        (
            "wechat 40001: invalid credential, access_token is invalid",
            "wechat 40001: invalid credential, access_token is invalid",
        ),
    ],
    ids=[
        "access-token",
        "html-escaped-signed-query",
        "robot-key",
        "secret-token-signature-password",
        "suffixed-names",
        "percent-encoded-url-inside-a-parameter",
        "json-escaped-slashes",
        "json-fields",
        "bearer-header",
        "bearer-in-prose",
        "harmless-names-kept",
        "prose-kept",
    ],
)
def test_credential_named_values_are_scrubbed_whatever_they_are(text: str, scrubbed: str) -> None:
    """A table: what follows a credential's name is masked, nothing else."""
    assert Secrets({}).redact(text) == scrubbed


@pytest.mark.parametrize(
    "shown",
    ["ab/c+d=e&f", "ab%2Fc%2Bd%3De%26f", "ab/c+d=e&amp;f", "ab\\/c+d=e&f"],
    ids=["as-is", "percent-encoded", "html-escaped", "json-escaped"],
)
def test_a_secret_is_scrubbed_in_every_form(shown: str) -> None:
    """A configured secret with URL-special characters is scrubbed as URLs, HTML and JSON
    show it."""
    secrets = Secrets({"S": "ab/c+d=e&f"})
    secrets.get("S")
    assert secrets.redact(f"page: {shown} end") == "page: *** end"


def test_a_remembered_credential_is_scrubbed() -> None:
    """A run-time credential remembered is scrubbed from then on, with no name to give it away."""
    secrets = Secrets({})
    assert secrets.redact("x tok-runtime-81 y") == "x tok-runtime-81 y"
    assert secrets.remember("tok-runtime-81") == "tok-runtime-81"
    assert secrets.redact("x tok-runtime-81 y") == "x *** y"


def test_remembered_credentials_are_bounded() -> None:
    """The oldest remembered credentials drop out past RUNTIME_MAX; the newest are kept."""
    secrets = Secrets({})
    for i in range(RUNTIME_MAX + 5):
        secrets.remember(f"runtime-token-{i:04d}")
    assert secrets.redact("runtime-token-0000") == "runtime-token-0000"
    assert secrets.redact(f"runtime-token-{RUNTIME_MAX + 4:04d}") == "***"


def test_short_values_are_not_scrubbed_everywhere() -> None:
    """A value under four characters would mask half of every text: it is not taken."""
    secrets = Secrets({})
    secrets.remember("ab")
    assert secrets.redact("about a tab") == "about a tab"
