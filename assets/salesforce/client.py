"""Salesforce connection: OAuth login, one resilient request path, REST query pages, Bulk API 2.0.

Works the same against a live org and the `sandbox` HTTPS emulator: everything comes from the
environment (SALESFORCE_LOGIN_URL, _USERNAME, _PASSWORD, _SECURITY_TOKEN, _CLIENT_ID,
_CLIENT_SECRET, _CA_FILE, _API_VERSION). Login is OAuth 2.0 (password or client_credentials grant)
over a `requests.Session` that trusts exactly SALESFORCE_CA_FILE when set and ignores proxy
environment variables; `simple_salesforce.Salesforce(instance_url=, session_id=, session=,
version=)` is then built on that session (URL layout, ad hoc calls).

Hot-path requests (query pages, describe, bulk jobs) go through `SalesforceClient.request`, the one
place with the resilience policy: re-login once per INVALID_SESSION_ID (401) and replay the same
URL (a REST `nextRecordsUrl` survives a new session), bounded exponential backoff on 5xx, 429,
connection errors, timeouts and truncated bodies, and an immediate, clear stop on
REQUEST_LIMIT_EXCEEDED (retrying would only burn more of the org's daily API budget). Query
pages are parsed in the read-ahead thread, by a caller-given parser (the extraction reads them
straight into Arrow) or with orjson into plain dicts (simple-salesforce's OrderedDict parsing is
several times slower). Secrets (password, security token, client id/secret, access token) are
redacted from every message this module produces.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

logger = logging.getLogger("salesops.salesforce")

DEFAULT_LOGIN_URL = "https://login.salesforce.com"
DEFAULT_API_VERSION = "62.0"
ENV_VARS = (
    "SALESFORCE_LOGIN_URL",
    "SALESFORCE_USERNAME",
    "SALESFORCE_PASSWORD",
    "SALESFORCE_SECURITY_TOKEN",
    "SALESFORCE_CLIENT_ID",
    "SALESFORCE_CLIENT_SECRET",
    "SALESFORCE_CA_FILE",
    "SALESFORCE_API_VERSION",
)
_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class SalesforceError(RuntimeError):
    """Base class for extraction errors; messages are already redacted."""


class CredentialsMissingError(SalesforceError):
    pass


class SalesforceAuthError(SalesforceError):
    pass


class RequestLimitExceededError(SalesforceError):
    pass


class QueryLocatorExpiredError(SalesforceError):
    """The server no longer knows a nextRecordsUrl: restart the query from the cursor."""


class SalesforceApiError(SalesforceError):
    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class SalesforceUnavailableError(SalesforceError):
    """Retries exhausted on transient failures (5xx, resets, timeouts)."""


class Redactor:
    """Replaces every known secret value in a text with ***."""

    def __init__(self, secrets: list[str | None] | None = None):
        self._secrets: set[str] = set()
        for s in secrets or []:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self._secrets.add(secret)

    def __call__(self, text: object) -> str:
        out = str(text)
        for s in sorted(self._secrets, key=len, reverse=True):
            out = out.replace(s, "***")
        return out


class _RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        record.msg = self.redactor(record.msg)
        return True


@dataclass(frozen=True)
class SalesforceSettings:
    """Connection settings; `from_env()` reads the SALESFORCE_* variables."""

    login_url: str = DEFAULT_LOGIN_URL
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    api_version: str = DEFAULT_API_VERSION

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SalesforceSettings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value and value.strip() else None

        return cls(
            login_url=(get("SALESFORCE_LOGIN_URL") or DEFAULT_LOGIN_URL).rstrip("/"),
            username=get("SALESFORCE_USERNAME"),
            password=get("SALESFORCE_PASSWORD"),
            security_token=get("SALESFORCE_SECURITY_TOKEN"),
            client_id=get("SALESFORCE_CLIENT_ID"),
            client_secret=get("SALESFORCE_CLIENT_SECRET"),
            ca_file=get("SALESFORCE_CA_FILE"),
            api_version=(get("SALESFORCE_API_VERSION") or DEFAULT_API_VERSION).lstrip("v"),
        )

    @property
    def secrets(self) -> list[str | None]:
        return [self.password, self.security_token, self.client_id, self.client_secret]

    @property
    def grant_type(self) -> str:
        """'password' when a username is set, else 'client_credentials'; raises if neither fits."""
        if self.username and self.password:
            return "password"
        if not self.username and self.client_id and self.client_secret:
            return "client_credentials"
        if self.username:
            missing = ["SALESFORCE_PASSWORD"]
        elif self.client_id or self.client_secret:
            missing = ["SALESFORCE_CLIENT_SECRET" if self.client_id else "SALESFORCE_CLIENT_ID"]
        else:
            missing = []
        raise CredentialsMissingError(
            "Salesforce credentials are missing: "
            + (f"{', '.join(missing)} not set. " if missing else "none of the variables is set. ")
            + "Set SALESFORCE_USERNAME, SALESFORCE_PASSWORD and SALESFORCE_SECURITY_TOKEN (plus "
            "SALESFORCE_CLIENT_ID / SALESFORCE_CLIENT_SECRET of the connected app) for the "
            "password flow, or only SALESFORCE_CLIENT_ID and SALESFORCE_CLIENT_SECRET for the "
            "client-credentials flow; SALESFORCE_LOGIN_URL defaults to "
            f"{DEFAULT_LOGIN_URL}, SALESFORCE_CA_FILE is optional (the sandbox sets it)."
        )


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    max_relogins: int = 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetryPolicy:
        env = os.environ if env is None else env
        return cls(
            max_retries=int(env.get("SALESOPS_SF_MAX_RETRIES", cls.max_retries)),
            backoff_base=float(env.get("SALESOPS_SF_BACKOFF_SECONDS", cls.backoff_base)),
            read_timeout=float(env.get("SALESOPS_SF_READ_TIMEOUT", cls.read_timeout)),
        )

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter, capped."""
        return min(self.backoff_max, self.backoff_base * 2**attempt) * (0.5 + random.random() / 2)


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    relogins: int = 0
    logins: int = 0


def _error_body(resp: requests.Response) -> tuple[str | None, str]:
    """(errorCode, message) from a Salesforce error response (list or dict JSON, or text)."""
    try:
        body = orjson.loads(resp.content)
    except (orjson.JSONDecodeError, requests.RequestException):
        return None, resp.text[:300] if resp.text else resp.reason or ""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if isinstance(body, dict):
        code = body.get("errorCode") or body.get("error")
        msg = body.get("message") or body.get("error_description") or ""
        return (str(code) if code else None), str(msg)
    return None, str(body)[:300]


class _Prefetcher:
    """A one-thread executor for read-ahead; on early exit the pending request is abandoned."""

    def __enter__(self) -> ThreadPoolExecutor:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sf-prefetch")
        return self._pool

    def __exit__(self, *exc: object) -> None:
        # a caller that closed the page generator (GeneratorExit) may use the session next:
        # let the request in flight finish so the session is never used by two threads
        self._pool.shutdown(wait=exc[0] is None or exc[0] is GeneratorExit, cancel_futures=True)


class SalesforceClient:
    """A logged-in Salesforce API client with the resilience policy of this module."""

    def __init__(
        self,
        settings: SalesforceSettings | None = None,
        retry: RetryPolicy | None = None,
        log: Any = None,
    ):
        self.settings = settings or SalesforceSettings.from_env()
        self.settings.grant_type  # noqa: B018  (fail fast, naming the env vars)
        self.retry = retry or RetryPolicy.from_env()
        self.redact = Redactor(self.settings.secrets)
        self.log = log or logger
        if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
            logger.addFilter(_RedactingFilter(self.redact))
        else:
            for f in logger.filters:
                if isinstance(f, _RedactingFilter):
                    for s in self.settings.secrets:
                        f.redactor.add(s)
        self.stats = ClientStats()
        self.session = requests.Session()
        self.session.trust_env = False
        if self.settings.ca_file:
            self.session.verify = self.settings.ca_file
        self.instance_url: str | None = None
        self._token: str | None = None
        self._sf: Any = None

    # -- auth ---------------------------------------------------------------------------------
    def login(self) -> None:
        s = self.settings
        data = {"grant_type": s.grant_type}
        if s.client_id:
            data["client_id"] = s.client_id
        if s.client_secret:
            data["client_secret"] = s.client_secret
        if data["grant_type"] == "password":
            data["username"] = s.username or ""
            data["password"] = (s.password or "") + (s.security_token or "")
        url = f"{s.login_url}/services/oauth2/token"
        body = self._send("POST", url, data=data, auth=False)
        token, instance = body.get("access_token"), body.get("instance_url")
        if not token or not instance:
            raise SalesforceAuthError(
                f"Salesforce login at {s.login_url} answered without access_token/instance_url"
            )
        self._token = token
        self.redact.add(token)
        for f in logger.filters:
            if isinstance(f, _RedactingFilter):
                f.redactor.add(token)
        self.instance_url = instance.rstrip("/")
        self.stats.logins += 1
        self._sf = None  # rebuilt on the new session token when next used
        self.log.info(
            "Salesforce login OK (%s flow) at %s, API v%s",
            data["grant_type"],
            self.instance_url,
            s.api_version,
        )

    @property
    def sf(self) -> Any:
        """`simple_salesforce.Salesforce` on this session (URL layout, ad hoc calls), built on
        first use: the extraction's hot path never needs it (importing it costs ~0.2-0.5 s)."""
        self._ensure_login()
        if self._sf is None:
            from simple_salesforce import Salesforce

            self._sf = Salesforce(
                instance_url=self.instance_url,
                session_id=self._token,
                session=self.session,
                version=self.settings.api_version,
            )
        return self._sf

    def _ensure_login(self) -> None:
        if self._token is None:
            self.login()

    @property
    def base_url(self) -> str:
        self._ensure_login()
        return f"{self.instance_url}/services/data/v{self.settings.api_version}"

    # -- the one request path -----------------------------------------------------------------
    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """JSON answer of an authenticated API call (url absolute or /services/... path)."""
        return self._send(method, url, **kwargs)

    def request_bytes(self, method: str, url: str, **kwargs: Any) -> tuple[bytes, Mapping]:
        """(raw body, headers) of an authenticated API call: Bulk CSV results."""
        return self._send(method, url, raw=True, **kwargs)

    def _send(
        self,
        method: str,
        url: str,
        *,
        auth: bool = True,
        raw: bool = False,
        parse: Callable[[bytes], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        if auth:
            self._ensure_login()
            if url.startswith("/"):
                url = f"{self.instance_url}{url}"
        where = f"{method} {urlsplit(url).path}"
        extra_headers = kwargs.pop("headers", None) or {}
        attempt = relogins = 0
        last = ""
        while True:
            headers = dict(extra_headers)
            if auth:
                headers["Authorization"] = f"Bearer {self._token}"
            self.stats.requests += 1
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=headers,
                    timeout=(self.retry.connect_timeout, self.retry.read_timeout),
                    **kwargs,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = type(exc).__name__
                attempt = self._backoff(attempt, where, last)
                continue
            status = resp.status_code
            if status < 300:
                if raw:
                    return resp.content, resp.headers
                if parse is not None:  # raises orjson.JSONDecodeError on an invalid body
                    try:
                        return parse(resp.content)
                    except orjson.JSONDecodeError:
                        last = "truncated or invalid JSON body"
                        attempt = self._backoff(attempt, where, last)
                        continue
                if not resp.content:
                    return {}
                try:
                    return orjson.loads(resp.content)
                except orjson.JSONDecodeError:
                    last = "truncated or invalid JSON body"
                    attempt = self._backoff(attempt, where, last)
                    continue
            code, message = _error_body(resp)
            if code == "REQUEST_LIMIT_EXCEEDED":
                raise RequestLimitExceededError(
                    "Salesforce refused the request: REQUEST_LIMIT_EXCEEDED (the org's rolling "
                    f"24-hour API request limit is used up; server said: "
                    f"{self.redact(message)!r}). Not retrying, to spare the limit. Nothing of "
                    "the unfinished objects was committed; rerun once the limit frees up (check "
                    "Setup > Company Information > API Requests) or raise the org's limit."
                )
            if auth and status == 401 and relogins < self.retry.max_relogins:
                relogins += 1
                self.stats.relogins += 1
                self.log.warning(
                    "Salesforce session expired (%s) during %s; logging in again and replaying "
                    "the same request",
                    code or status,
                    where,
                )
                self.login()
                continue
            if code == "INVALID_QUERY_LOCATOR":
                raise QueryLocatorExpiredError(f"{where}: query locator expired or invalid")
            if status in _RETRYABLE_STATUS:
                last = f"HTTP {status} {code or ''}".strip()
                attempt = self._backoff(attempt, where, last)
                continue
            if not auth:
                raise SalesforceAuthError(
                    f"Salesforce login failed at {self.settings.login_url} (HTTP {status}, "
                    f"{code or 'no code'}: {self.redact(message)}). Check SALESFORCE_USERNAME, "
                    "SALESFORCE_PASSWORD, SALESFORCE_SECURITY_TOKEN, SALESFORCE_CLIENT_ID and "
                    "SALESFORCE_CLIENT_SECRET."
                )
            raise SalesforceApiError(
                f"Salesforce API error on {where}: HTTP {status} {code or ''}: "
                f"{self.redact(message)}",
                status=status,
                code=code,
            )

    def _backoff(self, attempt: int, where: str, reason: str) -> int:
        if attempt >= self.retry.max_retries:
            raise SalesforceUnavailableError(
                f"Salesforce unavailable: {where} failed {attempt + 1} times (last: "
                f"{self.redact(reason)}); giving up. Rerun later: completed loads are kept and "
                "the next run resumes from the committed cursor."
            )
        delay = self.retry.delay(attempt)
        self.stats.retries += 1
        self.log.warning(
            "Salesforce %s: %s; retry %d/%d in %.2fs",
            where,
            self.redact(reason),
            attempt + 1,
            self.retry.max_retries,
            delay,
        )
        time.sleep(delay)
        return attempt + 1

    # -- API helpers ----------------------------------------------------------------------------
    def describe(self, sobject: str) -> dict:
        from assets.salesforce.soql import validate_identifier

        validate_identifier(sobject, "object name")
        return self.request("GET", f"{self.base_url}/sobjects/{sobject}/describe")

    def count(self, soql: str, include_deleted: bool) -> int:
        endpoint = "queryAll" if include_deleted else "query"
        body = self.request("GET", f"{self.base_url}/{endpoint}", params={"q": soql})
        return int(body.get("totalSize", 0))

    def query_pages(
        self, soql: str, include_deleted: bool, batch_size: int = 2000
    ) -> Iterator[list[dict]]:
        """Yield the records (dicts) of each REST page (queryAll when include_deleted)."""

        def parse(data: bytes) -> tuple[list[dict], bool, str | None]:
            body = orjson.loads(data) if data else {}
            nxt = body.get("nextRecordsUrl")
            return body.get("records", []), bool(body.get("done", True)) or not nxt, nxt

        yield from self.query_pages_parsed(soql, include_deleted, parse, batch_size)

    def query_pages_parsed(
        self,
        soql: str,
        include_deleted: bool,
        parse: Callable[[bytes], Any],
        batch_size: int = 2000,
    ) -> Iterator[Any]:
        """Yield each REST page as `parse(body)` gives it (queryAll when include_deleted).

        `parse(body bytes)` returns (payload, done, nextRecordsUrl) and raises
        orjson.JSONDecodeError on an invalid body (retried like a truncated response); the
        payloads are yielded.

        The next page is requested in a background thread as soon as its nextRecordsUrl is
        known, and parsed there too, so the server prepares (and we parse) page k+1 while the
        caller writes page k. Only one request is ever in flight (the session is never used
        concurrently).
        """
        endpoint = "queryAll" if include_deleted else "query"
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"}
        with _Prefetcher() as pre:
            fut = pre.submit(
                self._send,
                "GET",
                f"{self.base_url}/{endpoint}",
                params={"q": soql},
                headers=headers,
                parse=parse,
            )
            while True:
                payload, done, nxt = fut.result()
                done = done or not nxt
                if not done:
                    fut = pre.submit(self._send, "GET", nxt, headers=headers, parse=parse)
                yield payload
                if done:
                    return

    def bulk_query_pages(
        self,
        soql: str,
        include_deleted: bool,
        max_records: int = 50000,
        poll_max: float = 5.0,
        parse: Callable[[bytes], Any] | None = None,
    ) -> Iterator[Any]:
        """Run a Bulk API 2.0 query job and yield its CSV result pages (by locator).

        With `parse`, each page is yielded as `parse(csv bytes)`, run in the read-ahead thread
        (so page k+1 is fetched and parsed while the caller writes page k)."""
        jobs = f"{self.base_url}/jobs/query"
        job = self.request(
            "POST",
            jobs,
            json={
                "operation": "queryAll" if include_deleted else "query",
                "query": soql,
                "contentType": "CSV",
                "columnDelimiter": "COMMA",
                "lineEnding": "LF",
            },
        )
        job_id = job["id"]
        delay = 0.05
        while True:
            info = self.request("GET", f"{jobs}/{job_id}")
            state = info.get("state")
            if state == "JobComplete":
                break
            if state in ("Failed", "Aborted"):
                raise SalesforceApiError(
                    f"Bulk API 2.0 query job {job_id} {state}: "
                    f"{self.redact(info.get('errorMessage', ''))}"
                )
            time.sleep(delay)
            delay = min(poll_max, delay * 2)

        def results_page(locator: str | None) -> tuple[Any, Mapping]:
            params: dict[str, Any] = {"maxRecords": max_records}
            if locator:
                params["locator"] = locator
            data, headers = self.request_bytes("GET", f"{jobs}/{job_id}/results", params=params)
            return (data if parse is None else parse(data)), headers

        try:
            with _Prefetcher() as pre:
                fut = pre.submit(results_page, None)
                while True:
                    data, headers = fut.result()
                    locator = headers.get("Sforce-Locator")
                    done = not locator or locator == "null"
                    if not done:
                        fut = pre.submit(results_page, locator)
                    yield data
                    if done:
                        break
        finally:
            try:
                self.request("DELETE", f"{jobs}/{job_id}")
            except SalesforceError as exc:  # cleanup only; the data is already in hand
                self.log.info("could not delete bulk job %s: %s", job_id, exc)

    def close(self) -> None:
        self.session.close()
