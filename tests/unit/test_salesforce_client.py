"""Client resilience policy against a scripted transport: re-login, backoff, limits, secrets."""

import json

import pytest
import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from assets.salesforce.client import (
    CredentialsMissingError,
    RequestLimitExceededError,
    RetryPolicy,
    SalesforceAuthError,
    SalesforceClient,
    SalesforceSettings,
    SalesforceUnavailableError,
)

SECRETS = {
    "password": "Pw-7f3a9c-SECRET",
    "security_token": "Tok-1b2c3d-SECRET",
    "client_id": "Cid-55aa-SECRET",
    "client_secret": "Csec-99ff-SECRET",
}
SETTINGS = SalesforceSettings(
    login_url="https://login.test", username="etl@example.com", api_version="62.0", **SECRETS
)
FAST = RetryPolicy(max_retries=3, backoff_base=0.001, backoff_max=0.002)


class Scripted(HTTPAdapter):
    """Answers requests from a handler(request, n) -> (status, body) or an exception."""

    def __init__(self, handler):
        super().__init__()
        self.handler = handler
        self.calls: list[tuple[str, str, str | None]] = []
        self.tokens = 0

    def send(self, request, **kwargs):
        self.calls.append((request.method, request.url, request.headers.get("Authorization")))
        if request.url.endswith("/services/oauth2/token"):
            self.tokens += 1
            out = (200, {"access_token": f"AT-{self.tokens}-zz", "instance_url": "https://inst"})
        else:
            out = self.handler(request, len(self.calls))
        if isinstance(out, Exception):
            raise out
        status, body = out
        resp = requests.Response()
        resp.status_code = status
        resp._content = body if isinstance(body, bytes) else json.dumps(body).encode()
        resp.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        resp.url, resp.request = request.url, request
        return resp


def client_with(handler) -> tuple[SalesforceClient, Scripted]:
    c = SalesforceClient(SETTINGS, retry=FAST)
    adapter = Scripted(handler)
    c.session.mount("https://", adapter)
    return c, adapter


def test_missing_credentials_name_the_env_vars():
    with pytest.raises(CredentialsMissingError) as exc:
        SalesforceClient(SalesforceSettings.from_env({}))
    for var in ("SALESFORCE_USERNAME", "SALESFORCE_PASSWORD", "SALESFORCE_CLIENT_ID"):
        assert var in str(exc.value)


def test_settings_from_env_and_grant_type():
    s = SalesforceSettings.from_env(
        {"SALESFORCE_CLIENT_ID": "a", "SALESFORCE_CLIENT_SECRET": "b", "SALESFORCE_CA_FILE": "/ca"}
    )
    assert s.grant_type == "client_credentials" and s.ca_file == "/ca"
    assert s.login_url == "https://login.salesforce.com" and s.api_version == "62.0"
    assert SETTINGS.grant_type == "password"
    assert "SECRET" not in repr(SETTINGS)


def test_session_ignores_proxy_env_and_trusts_ca_file():
    c = SalesforceClient(SalesforceSettings(client_id="a", client_secret="b", ca_file="/tmp/ca"))
    assert c.session.trust_env is False and c.session.verify == "/tmp/ca"


def pages_handler(fail: dict[int, object]):
    """Three pages; page requests listed in `fail` (by call number) answer the given fault."""

    def handler(request, n):
        if n in fail:
            return fail[n]
        url = request.url
        if "/queryAll" in url and "q=" in url:
            return 200, {"done": False, "nextRecordsUrl": "/services/data/v62.0/query/L-2",
                         "records": [{"Id": "1"}]}  # fmt: skip
        if url.endswith("/query/L-2"):
            return 200, {"done": False, "nextRecordsUrl": "/services/data/v62.0/query/L-3",
                         "records": [{"Id": "2"}]}  # fmt: skip
        if url.endswith("/query/L-3"):
            return 200, {"done": True, "records": [{"Id": "3"}]}
        return 404, [{"errorCode": "NOT_FOUND", "message": url}]

    return handler


def ids(pages):
    return [r["Id"] for page in pages for r in page]


def test_expired_session_relogs_in_and_replays_the_same_page():
    # call 1 = login, 2 = first page, 3 = page 2 -> 401, 4 = re-login, 5 = page 2 again
    expired = (401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired"}])
    c, a = client_with(pages_handler({3: expired}))
    assert ids(c.query_pages("SELECT Id FROM Lead", include_deleted=True)) == ["1", "2", "3"]
    assert c.stats.relogins == 1 and a.tokens == 2
    assert a.calls[2][1] == a.calls[4][1]  # the same nextRecordsUrl replayed
    assert a.calls[4][2] == "Bearer AT-2-zz"  # with the new token


def test_5xx_and_resets_are_retried_with_backoff():
    c, a = client_with(
        pages_handler({3: (503, b"busy"), 4: requests.ConnectionError("reset"), 5: (502, b"")})
    )
    assert ids(c.query_pages("SELECT Id FROM Lead", include_deleted=True)) == ["1", "2", "3"]
    assert c.stats.retries == 3


def test_truncated_json_is_retried():
    c, a = client_with(pages_handler({3: (200, b'{"done": false, "recor')}))
    assert ids(c.query_pages("SELECT Id FROM Lead", include_deleted=True)) == ["1", "2", "3"]
    assert c.stats.retries == 1


def test_retries_are_bounded():
    c, a = client_with(lambda req, n: (503, b"down"))
    with pytest.raises(SalesforceUnavailableError, match="failed 4 times"):
        list(c.query_pages("SELECT Id FROM Lead", include_deleted=True))
    assert len(a.calls) == 1 + 4  # login + first try + 3 retries


def test_request_limit_stops_at_once():
    limit = (403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit"}])
    c, a = client_with(pages_handler({3: limit}))
    with pytest.raises(RequestLimitExceededError, match="REQUEST_LIMIT_EXCEEDED"):
        list(c.query_pages("SELECT Id FROM Lead", include_deleted=True))
    assert len(a.calls) == 3  # no retry storm


def test_login_failure_is_clear_and_redacted():
    def handler(request, n):
        return 400, {}

    c = SalesforceClient(SETTINGS, retry=FAST)

    class BadLogin(Scripted):
        def send(self, request, **kwargs):
            body = {
                "error": "invalid_grant",
                "error_description": f"bad password {SECRETS['password']} for {request.url}",
            }
            resp = requests.Response()
            resp.status_code, resp._content = 400, json.dumps(body).encode()
            resp.url, resp.request = request.url, request
            return resp

    c.session.mount("https://", BadLogin(handler))
    with pytest.raises(SalesforceAuthError) as exc:
        c.login()
    text = str(exc.value)
    assert "invalid_grant" in text and "SALESFORCE_PASSWORD" in text
    for secret in SECRETS.values():
        assert secret not in text


def test_simple_salesforce_object_is_built_lazily_on_the_current_session():
    from simple_salesforce import Salesforce

    c, a = client_with(pages_handler({}))
    c.login()
    assert c._sf is None  # the hot path (login, queries) never builds it
    sf = c.sf
    assert isinstance(sf, Salesforce) and sf.session is c.session
    assert sf.session_id == "AT-1-zz" and sf.sf_instance == "inst" and sf.sf_version == "62.0"
    assert c.sf is sf  # built once per session token
    c.login()
    assert c.sf is not sf and c.sf.session_id == "AT-2-zz"
    assert a.tokens == 2
