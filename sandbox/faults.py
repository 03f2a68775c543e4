"""Deterministic fault injection for the sandbox (`SandboxServer.faults = FaultPlan(...)`).

Faults are planned by counting, never by chance, so a test can say exactly what must happen:

* Requests are numbered 1, 2, 3... from the moment the plan is set. With `scope="pages"` (the
  default) only page requests count: the first page of a query/queryAll, each next-records
  page, and each Bulk API 2.0 results page. With `scope="all"` every authenticated
  `/services/data` request counts (describe, job status, ...). OAuth is never faulted.
* Per counted request the first matching rule wins, in this order:
  `request_limit_after` (403 REQUEST_LIMIT_EXCEEDED for every request after the N-th),
  `status_503_next` / `status_503_every` (503), `reset_next` / `reset_every` (socket closed with
  no response, as a dropped connection), then `slow_every` adds `slow_seconds` of delay before a
  normal answer. `*_next=K` hits the first K counted requests; `*_every=N` hits requests
  N, 2N, 3N...
* Page events (after a page was sent): `expire_session_after_pages=N` invalidates every issued
  access token once N pages have been served, so the next request gets 401 INVALID_SESSION_ID
  and the client must log in again (query locators stay valid, as in Salesforce);
  `update_after_page=k` changes one record after the k-th page: by default the first record of
  the query being paged (already sent with its old values), bumping LastModifiedDate and
  SystemModstamp past every other record, optionally with `update_changes`. A consistent
  incremental extractor picks it up on its next run. `on_page` is a free hook for anything else.

`SandboxServer.stats["faults"]` counts what was injected, by kind.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SCOPES = ("pages", "all")


@dataclass(frozen=True)
class PageEvent:
    """A page that was just served: passed to `FaultPlan.on_page`."""

    object_name: str
    page_number: int  # 1-based over all pages served since the plan was set
    query_page: int  # 1-based within its query / bulk job
    first_record_id: str | None  # Id of the first record of the query (already served)
    kind: str  # "query" | "bulk"


@dataclass
class FaultPlan:
    scope: str = "pages"
    request_limit_after: int | None = None
    status_503_next: int = 0
    status_503_every: int | None = None
    reset_next: int = 0
    reset_every: int | None = None
    slow_every: int | None = None
    slow_seconds: float = 0.0
    expire_session_after_pages: int | None = None
    update_after_page: int | None = None
    update_object: str | None = None
    update_record_id: str | None = None
    update_changes: dict[str, Any] = field(default_factory=dict)
    on_page: Callable[[PageEvent], None] | None = None

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"FaultPlan.scope must be one of {SCOPES}, got {self.scope!r}")
        for name in ("status_503_every", "reset_every", "slow_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"FaultPlan.{name} must be >= 1 (or None), got {value}")


@dataclass(frozen=True)
class Action:
    kind: str | None = None  # None | "request_limit" | "status_503" | "reset"
    delay: float = 0.0


class FaultInjector:
    """The running state of one plan: counters and the decisions derived from them."""

    def __init__(self, plan: FaultPlan | None) -> None:
        self.plan = plan or FaultPlan()
        self._lock = threading.Lock()
        self.requests = 0
        self.pages = 0
        self.injected: Counter[str] = Counter()
        self._503_left = self.plan.status_503_next
        self._reset_left = self.plan.reset_next
        self._expired = False
        self._updated = False

    def counts(self, is_page: bool) -> bool:
        return is_page or self.plan.scope == "all"

    def before_request(self, is_page: bool) -> Action:
        if not self.counts(is_page):
            return Action()
        p = self.plan
        with self._lock:
            self.requests += 1
            n = self.requests
            if p.request_limit_after is not None and n > p.request_limit_after:
                self.injected["request_limit"] += 1
                return Action("request_limit")
            if self._503_left > 0 or (p.status_503_every and n % p.status_503_every == 0):
                if self._503_left > 0:
                    self._503_left -= 1
                self.injected["status_503"] += 1
                return Action("status_503")
            if self._reset_left > 0 or (p.reset_every and n % p.reset_every == 0):
                if self._reset_left > 0:
                    self._reset_left -= 1
                self.injected["reset"] += 1
                return Action("reset")
            if p.slow_every and n % p.slow_every == 0 and p.slow_seconds > 0:
                self.injected["slow"] += 1
                return Action(None, p.slow_seconds)
        return Action()

    def after_page(self) -> tuple[int, bool, bool]:
        """Count a served page.

        Returns (page number, expire the sessions now?, update a record now?).
        """
        p = self.plan
        with self._lock:
            self.pages += 1
            n = self.pages
            expire = (
                p.expire_session_after_pages is not None
                and not self._expired
                and n >= p.expire_session_after_pages
            )
            if expire:
                self._expired = True
                self.injected["session_expired"] += 1
            update = (
                p.update_after_page is not None and not self._updated and n >= p.update_after_page
            )
            if update:
                self._updated = True
                self.injected["record_updated"] += 1
        return n, expire, update
