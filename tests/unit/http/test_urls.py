"""URLs as pure functions: resolving paths, the host allow-list, redirect targets, redaction."""

import pytest

from dictamesh_connectors.http.urls import (
    UnsafeURLError,
    URLResolver,
    origin_of,
    redact_url,
    redirect_target,
    split_origin,
)

URL = "https://api.test/v1/items?id=3&api_key=SECRET-KEY"


def test_redact_url():
    assert redact_url(URL) == "https://api.test/v1/items?id=3&api_key=***"
    # The core's one function: the user name stays, the password does not.
    assert redact_url("https://u:pw@h/x?token=t&x=1") == "https://u:***@h/x?token=***&x=1"
    assert redact_url("https://h/x?sig=abc", secret_params=()) == "https://h/x?sig=***"
    assert redact_url("https://h/x?mykey=abc", secret_params=["MyKey"]) == "https://h/x?mykey=***"


def test_origin_and_split():
    assert origin_of("HTTPS://API.test/x") == ("https", "api.test", 443)
    assert origin_of("http://h:8080") == ("http", "h", 8080)
    assert split_origin("https://h:1/a/b?c=d") == ("https://h:1", "/a/b?c=d")
    assert split_origin("https://h") == ("https://h", "/")


def test_resolve_joins_paths_and_encodes_queries():
    urls = URLResolver("https://api.test/v1/", allowed_hosts=["cdn.test", "*.files.test"])
    assert urls.resolve("users") == urls.resolve("/users") == "https://api.test/v1/users"
    assert urls.resolve("") == "https://api.test/v1"
    assert urls.resolve("/x", {"q": "a b"}) == "https://api.test/v1/x?q=a+b"
    assert urls.resolve("https://cdn.test/f") == "https://cdn.test/f"
    assert urls.resolve("https://a.files.test/f") == "https://a.files.test/f"
    assert urls.resolve('/a"b') == "https://api.test/v1/a%22b"


@pytest.mark.parametrize(
    "path,reason",
    [
        ("https://evil.test/x", "not base_url's"),
        ("//evil.test/x", "not base_url's"),
        ("ftp://api.test/x", "only http(s)"),
        ("https://u:p@api.test/x", "credentials"),
        ("/x y", "control characters"),
        ("/\\evil", "control characters"),
    ],
)
def test_resolve_refuses_unsafe_urls(path, reason):
    with pytest.raises(UnsafeURLError) as info:
        URLResolver("https://api.test/v1").resolve(path)
    assert reason in info.value.reason
    assert "p@" not in info.value.shown  # what is shown never holds credentials


def test_redirect_target():
    assert redirect_target("https://h/a/b", "../c#frag") == "https://h/c"
    assert redirect_target("https://h/a", "https://o.test/x") == "https://o.test/x"
    for bad in ("file:///etc/passwd", "mailto:a@b.test", "/x\\evil"):
        with pytest.raises(UnsafeURLError):
            redirect_target("https://h/a", bad)
