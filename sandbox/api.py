"""A Salesforce REST emulator over real HTTPS on 127.0.0.1 — the pipeline's local Salesforce.

    with SandboxServer(org) as sf:          # org: .tables dict or a plain dict[str, pa.Table]
        os.environ.update(sf.credentials)   # SALESFORCE_LOGIN_URL, ..., SALESFORCE_CA_FILE
        ...                                 # run the pipeline against it
        sf.faults = FaultPlan(status_503_every=5)
        sf.stats                            # request / page / fault counters

Endpoints (as simple-salesforce 1.12 calls them): OAuth 2.0 token (password and
client_credentials grants), versions, describeGlobal, sObject describe, query / queryAll with
nextRecordsUrl pagination, Bulk API 2.0 query jobs (create, status, CSV results with
Sforce-Locator, abort, delete), limits. The TLS certificate is issued at start by a throwaway CA
(`trustme`) whose PEM is written to `ca_file`; clients trust exactly that CA.

Query results are snapshots taken when the query (or bulk job) starts: later pages of a cursor do
not see later edits, like a Salesforce query locator. See docs/SANDBOX.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sandbox import soql
from sandbox.faults import Action, FaultInjector, FaultPlan, PageEvent
from sandbox.store import OrgStore, csv_records, json_records, read_table_file

log = logging.getLogger(__name__)

ORG_ID = "00D000000000001EAA"
USER_ID = "005000000000001AAA"
DAILY_API_LIMIT = 1_000_000
BULK_DEFAULT_MAX_RECORDS = 50_000
_DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^",
               "BACKQUOTE": "`"}  # fmt: skip
_LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
_DATA_RE = re.compile(r"^/services/data/v(\d+\.\d+)(/.*)?$")
_SESSION_INVALID = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


class ApiError(Exception):
    """An error answered in Salesforce's shape: `[{"message": ..., "errorCode": ...}]`."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> list[dict[str, str]]:
        return [{"message": self.message, "errorCode": self.error_code}]


@dataclass
class _Cursor:
    id: str
    object_name: str
    fields: list[str]
    rows: pa.Table
    first_id: str | None
    pages: int = 0
    last_used: float = field(default_factory=time.monotonic)
    # The next page, encoded in the background while the client is busy with this one.
    prefetch_key: tuple[int, int, str] | None = None
    prefetch: Future | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _BulkJob:
    id: str
    operation: str
    object_name: str
    fields: list[str]
    rows: pa.Table
    first_id: str | None
    delimiter: str
    line_ending: str
    version: str
    created: str
    state: str = "UploadComplete"
    polls: int = 0
    pages: int = 0


class _Retained:
    """Query cursors / bulk jobs by id: open ones (LRU of `max_open`, dropped after `idle_ttl`
    seconds unused, like Salesforce's 15-minute locator expiry) and finished ones (all pages
    served; a small LRU kept so a client that lost the last answer can ask again)."""

    def __init__(self, max_open: int, max_finished: int = 4, idle_ttl: float = 900.0) -> None:
        self.max_open, self.max_finished, self.idle_ttl = max_open, max_finished, idle_ttl
        self._open: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._finished: OrderedDict[str, tuple[Any, float]] = OrderedDict()

    def add(self, key: str, item: Any) -> None:
        now = time.monotonic()
        for k in [k for k, (_, used) in self._open.items() if now - used > self.idle_ttl]:
            del self._open[k]
        self._open[key] = (item, now)
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)

    def get(self, key: str) -> Any:
        for tier in (self._open, self._finished):
            if key in tier:
                item, _ = tier.pop(key)
                tier[key] = (item, time.monotonic())
                return item
        return None

    def finish(self, key: str) -> None:
        entry = self._open.pop(key, None)
        if entry is not None:
            self._finished[key] = entry
            while len(self._finished) > self.max_finished:
                self._finished.popitem(last=False)

    def pop(self, key: str) -> None:
        self._open.pop(key, None)
        self._finished.pop(key, None)

    def values(self) -> list[Any]:
        return [item for tier in (self._open, self._finished) for item, _ in tier.values()]

    def __len__(self) -> int:
        return len(self._open) + len(self._finished)


def _now_iso() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _tables_of(org: Any) -> dict[str, pa.Table]:
    if org is None:
        return {}
    if isinstance(org, Mapping):
        return dict(org)
    tables = getattr(org, "tables", None)
    if not isinstance(tables, Mapping):
        raise TypeError(
            "org must be a dict[str, pyarrow.Table] or have a .tables dict (sandbox.org.Org)"
        )
    return dict(tables)


class SandboxServer:
    """The HTTPS emulator, running in a background thread (a context manager)."""

    def __init__(
        self,
        org: Any = None,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 2000,
        api_version: str = "62.0",
        username: str = "salesops@sandbox.example.com",
        password: str | None = None,
        security_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        state_dir: str | Path | None = None,
        session_ttl: float | None = None,
        bulk_polls_to_complete: int = 1,
        max_cursors: int = 64,
        prefetch: bool = True,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.host = host
        self.port = port
        self.page_size = page_size
        self.api_version = api_version
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.security_token = security_token or secrets.token_hex(12)
        self.client_id = client_id or "3MVG9sandbox" + secrets.token_hex(16)
        self.client_secret = client_secret or secrets.token_hex(32)
        self.session_ttl = session_ttl
        self.bulk_polls_to_complete = bulk_polls_to_complete
        self.max_cursors = max_cursors
        self.prefetch = prefetch
        self._executor: ThreadPoolExecutor | None = None
        self.store = OrgStore(_tables_of(org))
        self._state_dir_arg = Path(state_dir) if state_dir is not None else None
        self._state_dir: Path | None = None
        self._owns_state_dir = False
        self._ca_file: Path | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._duck = duckdb.connect()
        self._duck_lock = threading.Lock()
        self._lock = threading.RLock()
        self._tokens: dict[str, float] = {}
        self._cursors = _Retained(max_cursors)
        self._jobs = _Retained(max_cursors)
        self._injector = FaultInjector(None)
        self._signing_key = secrets.token_bytes(32)
        self.reset_stats()

    # -- construction helpers ------------------------------------------------------------
    @classmethod
    def from_dir(cls, path: str | Path, **kwargs: Any) -> SandboxServer:
        """Serve `<SObject>.parquet` / `<SObject>.csv` files of a folder (API field names)."""
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"org folder not found: {folder}")
        tables: dict[str, pa.Table] = {}
        for file in sorted(folder.iterdir()):
            if file.suffix not in (".parquet", ".csv") or file.stem in tables:
                continue
            preferred = file.with_suffix(".parquet")
            if file.suffix == ".csv" and preferred.exists():
                continue
            tables[file.stem] = read_table_file(file, file.stem)
        if not tables:
            raise FileNotFoundError(f"no <SObject>.parquet or <SObject>.csv files in {folder}")
        return cls(tables, **kwargs)

    def set_org(self, org: Any) -> None:
        """Replace every table (e.g. the next day's org between two pipeline runs)."""
        self.store.set_tables(_tables_of(org))

    def set_table(self, obj_name: str, table: pa.Table) -> None:
        self.store.set_table(obj_name, table)

    def table(self, obj_name: str) -> pa.Table:
        """The current data of one object (after any injected record updates)."""
        return self.store.table(obj_name)

    def update_record(
        self,
        obj_name: str,
        record_id: str,
        changes: Mapping[str, Any] | None = None,
        modstamp: datetime | None = None,
    ) -> datetime:
        """Edit one record now (bumps SystemModstamp); returns the new SystemModstamp."""
        stamp = self.store.update_record(obj_name, record_id, changes, modstamp)
        with self._lock:
            self._stats["records_updated"].append(
                {"object": obj_name, "id": record_id, "system_modstamp": stamp.isoformat()}
            )
        return stamp

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> SandboxServer:
        if self._httpd is not None:
            return self
        import trustme

        if self._state_dir_arg is not None:
            self._state_dir = self._state_dir_arg
            self._state_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._state_dir = Path(tempfile.mkdtemp(prefix="salesops-sandbox-"))
            self._owns_state_dir = True
        ca = trustme.CA(organization_name="salesops sandbox throwaway CA")
        cert = ca.issue_cert(self.host, "localhost", "127.0.0.1")
        self._ca_file = self._state_dir / "sandbox-ca.pem"
        ca.cert_pem.write_to_path(str(self._ca_file))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        cert.configure_cert(context)

        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox-encode")
        handler = type("SandboxHandler", (_Handler,), {"sandbox": self})
        httpd = _TLSServer((self.host, self.port), handler)
        httpd.ssl_context = context
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"salesforce-sandbox-{self.port}",
        )
        self._thread.start()
        log.info("Salesforce sandbox listening on %s (CA %s)", self.url, self._ca_file)
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self._owns_state_dir and self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._owns_state_dir = False

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("SandboxServer is not started (call start() or use `with`)")
        return f"https://{self.host}:{self.port}"

    @property
    def ca_file(self) -> str:
        if self._ca_file is None:
            raise RuntimeError("SandboxServer is not started (call start() or use `with`)")
        return str(self._ca_file)

    @property
    def credentials(self) -> dict[str, str]:
        """Environment variables that point the pipeline at this sandbox."""
        return {
            "SALESFORCE_LOGIN_URL": self.url,
            "SALESFORCE_USERNAME": self.username,
            "SALESFORCE_PASSWORD": self.password,
            "SALESFORCE_SECURITY_TOKEN": self.security_token,
            "SALESFORCE_CLIENT_ID": self.client_id,
            "SALESFORCE_CLIENT_SECRET": self.client_secret,
            "SALESFORCE_CA_FILE": self.ca_file,
            "SALESFORCE_API_VERSION": self.api_version,
        }

    # -- faults and stats ----------------------------------------------------------------
    @property
    def faults(self) -> FaultPlan:
        return self._injector.plan

    @faults.setter
    def faults(self, plan: FaultPlan | None) -> None:
        """Set a new plan; its request and page counters start from zero."""
        with self._lock:
            self._faults_before.update(self._injector.injected)
            self._injector = FaultInjector(plan)

    def reset_stats(self) -> None:
        with getattr(self, "_lock", threading.RLock()):
            self._stats: dict[str, Any] = {
                "requests": Counter(),
                "status": Counter(),
                "pages": 0,
                "rows": 0,
                "bytes": 0,
                "logins": 0,
                "login_failures": 0,
                "records_updated": [],
            }
            self._faults_before: Counter[str] = Counter()
            if hasattr(self, "_injector"):
                self._injector.injected.clear()

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since start / reset_stats(): requests by endpoint, responses by status,
        pages and rows served, logins, injected faults by kind (summed over every plan set),
        records updated by faults."""
        with self._lock:
            out = {
                "requests": dict(self._stats["requests"]),
                "status": {str(k): v for k, v in self._stats["status"].items()},
                "pages": self._stats["pages"],
                "rows": self._stats["rows"],
                "bytes": self._stats["bytes"],
                "logins": self._stats["logins"],
                "login_failures": self._stats["login_failures"],
                "records_updated": list(self._stats["records_updated"]),
                "faults": dict(self._faults_before + self._injector.injected),
            }
        return out

    def expire_sessions(self) -> int:
        """Invalidate every issued access token (clients must log in again)."""
        with self._lock:
            n = len(self._tokens)
            self._tokens.clear()
        return n

    # -- auth ----------------------------------------------------------------------------
    def _issue_token(self) -> dict[str, str]:
        token = f"{ORG_ID}!" + secrets.token_urlsafe(48)
        issued = str(int(time.time() * 1000))
        with self._lock:
            self._tokens[token] = time.monotonic()
            self._stats["logins"] += 1
        identity = f"{self.url}/id/{ORG_ID}/{USER_ID}"
        signature = base64.b64encode(
            hmac.new(self._signing_key, (identity + issued).encode(), hashlib.sha256).digest()
        ).decode()
        return {
            "access_token": token,
            "instance_url": self.url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued,
            "signature": signature,
        }

    def _oauth(self, form: dict[str, str]) -> tuple[int, dict[str, str]]:
        grant = form.get("grant_type", "")

        def fail(error: str, description: str) -> tuple[int, dict[str, str]]:
            with self._lock:
                self._stats["login_failures"] += 1
            return 400, {"error": error, "error_description": description}

        if grant not in ("password", "client_credentials"):
            return fail("unsupported_grant_type", "grant type not supported")
        if not hmac.compare_digest(form.get("client_id", ""), self.client_id):
            return fail("invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest(form.get("client_secret", ""), self.client_secret):
            return fail("invalid_client", "invalid client credentials")
        if grant == "password":
            ok_user = hmac.compare_digest(form.get("username", ""), self.username)
            ok_pass = hmac.compare_digest(
                form.get("password", ""), self.password + self.security_token
            )
            if not (ok_user and ok_pass):
                return fail("invalid_grant", "authentication failure")
        return 200, self._issue_token()

    def _check_token(self, header: str | None) -> None:
        token = ""
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() in ("bearer", "oauth"):
                token = value.strip()
        with self._lock:
            issued = self._tokens.get(token)
            expired = (
                issued is not None
                and self.session_ttl is not None
                and time.monotonic() - issued > self.session_ttl
            )
            if expired:
                del self._tokens[token]
                issued = None
        if issued is None:
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")

    # -- queries -------------------------------------------------------------------------
    def _execute(self, text: str, include_deleted: bool) -> tuple[soql.Translated, Any]:
        """Run a SOQL query: returns (translation, rows table | count)."""
        try:
            parsed = soql.parse(text)
            tr = soql.translate(
                parsed,
                self.store.resolve,
                self.store.field_types,
                include_deleted,
                table_sql="sf_table",
            )
        except soql.SoqlError as exc:
            raise ApiError(400, exc.error_code, exc.message) from exc
        table = self.store.table(tr.object_name)
        if tr.simple and not tr.count_only:
            if not include_deleted and "IsDeleted" in table.column_names:
                table = table.filter(pc.invert(pc.fill_null(table["IsDeleted"], False)))
            cols = list(tr.fields)
            out = table.select(cols)
            if "Id" not in cols and "Id" in table.column_names:
                out = out.append_column("__sf_id", table["Id"])
            return tr, out
        with self._duck_lock:
            cur = self._duck.cursor()
        try:
            cur.register("sf_table", table)
            if tr.count_only:
                return tr, int(cur.execute(tr.count_sql, tr.params).fetchone()[0])
            return tr, cur.sql(tr.sql, params=tr.params).to_arrow_table()
        except duckdb.Error as exc:
            raise ApiError(400, soql.MALFORMED_QUERY, f"query failed: {exc}") from exc
        finally:
            cur.close()

    def _start_query(self, text: str, include_deleted: bool) -> _Cursor | dict[str, Any]:
        tr, result = self._execute(text, include_deleted)
        if tr.count_only:
            return {"totalSize": result, "done": True, "records": []}
        rows: pa.Table = result
        id_col = "Id" if "Id" in rows.column_names else "__sf_id"
        first_id = (
            rows[id_col][0].as_py() if rows.num_rows and id_col in rows.column_names else None
        )
        cursor = _Cursor("01g" + secrets.token_hex(8), tr.object_name, tr.fields, rows, first_id)
        with self._lock:
            self._cursors.add(cursor.id, cursor)
        return cursor

    def _page(self, cursor: _Cursor, offset: int, version: str, batch: int | None) -> bytes:
        size = self.page_size if batch is None else max(1, min(batch, self.page_size))
        total = cursor.rows.num_rows
        chunk = cursor.rows.slice(offset, size)
        end = offset + chunk.num_rows
        done = end >= total
        head = f'{{"totalSize":{total},"done":{"true" if done else "false"},'
        if not done:
            head += f'"nextRecordsUrl":"/services/data/v{version}/query/{cursor.id}-{end}",'
        with cursor.lock:
            key = (offset, size, version)
            records = None
            if cursor.prefetch is not None and cursor.prefetch_key == key:
                records = cursor.prefetch.result()
            cursor.prefetch, cursor.prefetch_key = None, None
            if records is None:
                records = json_records(chunk, cursor.object_name, cursor.fields, version)
            executor = self._executor
            if not done and executor is not None and self.prefetch:
                cursor.prefetch_key = (end, size, version)
                cursor.prefetch = executor.submit(
                    json_records,
                    cursor.rows.slice(end, size),
                    cursor.object_name,
                    cursor.fields,
                    version,
                )
        body = head.encode() + b'"records":[' + records + b"]}"
        with self._lock:
            cursor.pages += 1
            cursor.last_used = time.monotonic()
            if done:
                self._cursors.finish(cursor.id)
            self._stats["rows"] += chunk.num_rows
        self._after_page(cursor.object_name, cursor.pages, cursor.first_id, "query")
        return body

    def _after_page(self, obj: str, query_page: int, first_id: str | None, kind: str) -> None:
        injector = self._injector
        with self._lock:
            self._stats["pages"] += 1
        number, expire, update = injector.after_page()
        plan = injector.plan
        if expire:
            n = self.expire_sessions()
            log.info("sandbox fault: expired %d session(s) after page %d", n, number)
        if update:
            target_obj = plan.update_object or obj
            record_id = plan.update_record_id or (first_id if target_obj == obj else None)
            if record_id is None:
                table = self.store.table(target_obj)
                record_id = table["Id"][0].as_py() if table.num_rows else None
            if record_id is not None:
                self.update_record(target_obj, record_id, plan.update_changes)
        if plan.on_page is not None:
            plan.on_page(PageEvent(obj, number, query_page, first_id, kind))

    # -- bulk 2.0 ------------------------------------------------------------------------
    def _job_info(self, job: _BulkJob, full: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": job.id,
            "operation": job.operation,
            "object": job.object_name,
            "createdById": USER_ID,
            "createdDate": job.created,
            "systemModstamp": job.created,
            "state": job.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(job.version),
            "lineEnding": {v: k for k, v in _LINE_ENDINGS.items()}[job.line_ending],
            "columnDelimiter": {v: k for k, v in _DELIMITERS.items()}[job.delimiter],
        }
        if full:
            info.update(
                {
                    "jobType": "V2Query",
                    "numberRecordsProcessed": job.rows.num_rows
                    if job.state == "JobComplete"
                    else 0,
                    "retries": 0,
                    "totalProcessingTime": 0,
                }
            )
        return info

    def _create_job(self, payload: Any, version: str) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "request body must be a JSON object")
        operation = payload.get("operation")
        if operation not in ("query", "queryAll"):
            raise ApiError(
                400, "INVALIDJOB", f"operation must be query or queryAll, got {operation!r}"
            )
        delimiter = _DELIMITERS.get(payload.get("columnDelimiter") or "COMMA")
        line_ending = _LINE_ENDINGS.get(payload.get("lineEnding") or "LF")
        if delimiter is None or line_ending is None:
            raise ApiError(400, "INVALIDJOB", "unsupported columnDelimiter or lineEnding")
        text = payload.get("query") or ""
        tr, rows = self._execute(text, include_deleted=operation == "queryAll")
        if tr.count_only:
            raise ApiError(400, "INVALIDJOB", "COUNT() is not supported by Bulk API 2.0 query jobs")
        id_col = "Id" if "Id" in rows.column_names else "__sf_id"
        first_id = (
            rows[id_col][0].as_py() if rows.num_rows and id_col in rows.column_names else None
        )
        job = _BulkJob(
            id="750" + secrets.token_hex(8),
            operation=operation,
            object_name=tr.object_name,
            fields=tr.fields,
            rows=rows,
            first_id=first_id,
            delimiter=delimiter,
            line_ending=line_ending,
            version=version,
            created=_now_iso(),
        )
        with self._lock:
            self._jobs.add(job.id, job)
        return self._job_info(job)

    def _get_job(self, job_id: str) -> _BulkJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, "NOT_FOUND", f"The requested resource does not exist: job {job_id}")
        return job

    def _poll_job(self, job: _BulkJob) -> dict[str, Any]:
        with self._lock:
            job.polls += 1
            if job.state in ("UploadComplete", "InProgress"):
                job.state = (
                    "JobComplete" if job.polls > self.bulk_polls_to_complete else "InProgress"
                )
        return self._job_info(job, full=True)

    def _job_results(self, job: _BulkJob, params: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        if job.state != "JobComplete":
            raise ApiError(400, "API_ERROR", f"Job {job.id} is not complete (state {job.state})")
        locator = params.get("locator") or ""
        offset = 0
        if locator and locator != "null":
            try:
                offset = int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())
            except (ValueError, UnicodeDecodeError) as exc:
                raise ApiError(400, "INVALID_LOCATOR", f"invalid locator: {locator}") from exc
        try:
            max_records = int(params.get("maxRecords") or BULK_DEFAULT_MAX_RECORDS)
        except ValueError as exc:
            raise ApiError(400, "INVALIDJOB", "maxRecords must be a positive integer") from exc
        if max_records < 1:
            raise ApiError(400, "INVALIDJOB", "maxRecords must be a positive integer")
        chunk = job.rows.slice(offset, max_records)
        end = offset + chunk.num_rows
        next_locator = (
            base64.b64encode(str(end).encode()).decode().rstrip("=")
            if end < job.rows.num_rows
            else "null"
        )
        body = csv_records(chunk, job.fields, job.delimiter, job.line_ending, header=True)
        with self._lock:
            job.pages += 1
            self._stats["rows"] += chunk.num_rows
            if next_locator == "null":
                self._jobs.finish(job.id)
        self._after_page(job.object_name, job.pages, job.first_id, "bulk")
        headers = {"Sforce-Locator": next_locator, "Sforce-NumberOfRecords": str(chunk.num_rows)}
        return body, headers

    # -- routing -------------------------------------------------------------------------
    def _route(self, h: _Handler, method: str) -> None:
        parts = urlsplit(h.path)
        path = parts.path
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if path.rstrip("/") == "/services/oauth2/token":
            self._count("oauth_token")
            if method != "POST":
                return h.send_json(
                    405, {"error": "invalid_request", "error_description": "must use HTTP POST"}
                )
            raw = h.read_body().decode("utf-8", "replace")
            form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            status, body = self._oauth(form)
            return h.send_json(status, body)
        if path.rstrip("/") == "/services/data":
            self._count("versions")
            return h.send_json(
                200,
                [
                    {
                        "label": "Winter '25",
                        "url": f"/services/data/v{self.api_version}",
                        "version": self.api_version,
                    }
                ],
            )
        m = _DATA_RE.match(path)
        if not m:
            self._count("not_found")
            return h.send_json(
                404, ApiError(404, "NOT_FOUND", "The requested resource does not exist").body()
            )
        version, rest = m.group(1), (m.group(2) or "/")
        endpoint, handler_fn = self._resolve_endpoint(method, rest)
        self._count(endpoint)
        try:
            self._check_token(h.headers.get("Authorization"))
        except ApiError as exc:
            return h.send_json(exc.status, exc.body())
        if float(version) > float(self.api_version) or float(version) < 31.0:
            return h.send_json(
                404, ApiError(404, "NOT_FOUND", f"API version {version} is not supported").body()
            )
        is_page = endpoint in ("query", "query_all", "query_more", "bulk_results")
        action: Action = self._injector.before_request(is_page)
        if action.delay:
            time.sleep(action.delay)
        if action.kind == "request_limit":
            return h.send_json(
                403,
                [
                    {
                        "message": "TotalRequests Limit exceeded.",
                        "errorCode": "REQUEST_LIMIT_EXCEEDED",
                    }
                ],
            )
        if action.kind == "status_503":
            return h.send_json(
                503,
                [
                    {
                        "message": "Server is temporarily unavailable (sandbox fault injection)",
                        "errorCode": "SERVER_UNAVAILABLE",
                    }
                ],
            )
        if action.kind == "reset":
            return h.reset()
        try:
            handler_fn(h, version, rest, params)
        except ApiError as exc:
            h.send_json(exc.status, exc.body())

    def _count(self, endpoint: str) -> None:
        with self._lock:
            self._stats["requests"][endpoint] += 1

    def _count_status(self, status: int, nbytes: int) -> None:
        with self._lock:
            self._stats["status"][status] += 1
            self._stats["bytes"] += nbytes

    def _resolve_endpoint(self, method: str, rest: str) -> tuple[str, Any]:
        segs = [s for s in rest.split("/") if s]
        not_found = ("not_found", self._ep_not_found)
        if not segs:
            return ("resources", self._ep_resources) if method == "GET" else not_found
        head = segs[0]
        if method == "GET" and head == "sobjects":
            if len(segs) == 1:
                return "describe_global", self._ep_describe_global
            if len(segs) == 2:
                return "sobject", self._ep_sobject
            if len(segs) == 3 and segs[2] == "describe":
                return "describe", self._ep_describe
            return not_found
        if method == "GET" and head in ("query", "queryAll"):
            if len(segs) == 1:
                return ("query" if head == "query" else "query_all"), self._ep_query
            if len(segs) == 2:
                return "query_more", self._ep_query_more
            return not_found
        if method == "GET" and head == "limits" and len(segs) == 1:
            return "limits", self._ep_limits
        if head == "jobs" and len(segs) >= 2 and segs[1] == "query":
            if len(segs) == 2:
                if method == "POST":
                    return "bulk_create", self._ep_bulk_create
                if method == "GET":
                    return "bulk_list", self._ep_bulk_list
            if len(segs) == 3:
                if method == "GET":
                    return "bulk_status", self._ep_bulk_status
                if method == "PATCH":
                    return "bulk_abort", self._ep_bulk_abort
                if method == "DELETE":
                    return "bulk_delete", self._ep_bulk_delete
            if len(segs) == 4 and segs[3] == "results" and method == "GET":
                return "bulk_results", self._ep_bulk_results
        return not_found

    # -- endpoint handlers ---------------------------------------------------------------
    def _ep_not_found(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def _ep_resources(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        base = f"/services/data/v{version}"
        h.send_json(
            200,
            {
                "sobjects": f"{base}/sobjects",
                "query": f"{base}/query",
                "queryAll": f"{base}/queryAll",
                "limits": f"{base}/limits",
                "jobs": f"{base}/jobs",
            },
        )

    def _ep_describe_global(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        h.send_json(200, self.store.describe_global(version))

    def _resolve_sobject(self, rest: str) -> str:
        name = [s for s in rest.split("/") if s][1]
        canonical = self.store.resolve(name)
        if canonical is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return canonical

    def _ep_sobject(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        obj = self._resolve_sobject(rest)
        h.send_json(
            200, {"objectDescribe": self.store._sobject_summary(obj, version), "recentItems": []}
        )

    def _ep_describe(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        h.send_json(200, self.store.describe(self._resolve_sobject(rest), version))

    def _ep_limits(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        used = sum(self._stats["requests"].values())
        h.send_json(
            200,
            {
                "DailyApiRequests": {"Max": DAILY_API_LIMIT, "Remaining": DAILY_API_LIMIT - used},
                "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000 - len(self._jobs)},
            },
        )

    def _batch_size(self, h: _Handler) -> int | None:
        options = h.headers.get("Sforce-Query-Options") or ""
        m = re.search(r"batchSize\s*=\s*(\d+)", options)
        return max(200, int(m.group(1))) if m else None

    def _ep_query(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        include_deleted = rest.strip("/").split("/")[0] == "queryAll"
        if "q" not in params:
            raise ApiError(400, soql.MALFORMED_QUERY, "A query string is required (parameter q)")
        started = self._start_query(params["q"], include_deleted)
        if isinstance(started, dict):  # COUNT()
            return h.send_json(200, started)
        h.send_bytes(200, self._page(started, 0, version, self._batch_size(h)), "application/json")

    def _ep_query_more(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        locator = [s for s in rest.split("/") if s][1]
        cursor_id, _, offset_text = locator.rpartition("-")
        with self._lock:
            cursor = self._cursors.get(cursor_id)
        if cursor is None or not offset_text.isdigit():
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        offset = int(offset_text)
        if offset > cursor.rows.num_rows:
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        h.send_bytes(
            200, self._page(cursor, offset, version, self._batch_size(h)), "application/json"
        )

    def _ep_bulk_create(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        try:
            payload = json.loads(h.read_body() or b"null")
        except json.JSONDecodeError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"invalid JSON: {exc}") from exc
        h.send_json(200, self._create_job(payload, version))

    def _ep_bulk_list(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        h.send_json(
            200,
            {"done": True, "records": [self._job_info(j) for j in jobs], "nextRecordsUrl": None},
        )

    def _ep_bulk_status(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        h.send_json(200, self._poll_job(self._get_job(rest.strip("/").split("/")[2])))

    def _ep_bulk_abort(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        job = self._get_job(rest.strip("/").split("/")[2])
        try:
            payload = json.loads(h.read_body() or b"{}")
        except json.JSONDecodeError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"invalid JSON: {exc}") from exc
        if payload.get("state") != "Aborted":
            raise ApiError(400, "INVALIDJOB", "a query job can only be set to state Aborted")
        with self._lock:
            if job.state != "JobComplete":
                job.state = "Aborted"
        h.send_json(200, self._job_info(job))

    def _ep_bulk_delete(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        job = self._get_job(rest.strip("/").split("/")[2])
        with self._lock:
            self._jobs.pop(job.id)
        h.send_bytes(204, b"", None)

    def _ep_bulk_results(self, h: _Handler, version: str, rest: str, params: dict) -> None:
        job = self._get_job(rest.strip("/").split("/")[2])
        body, headers = self._job_results(job, params)
        h.send_bytes(200, body, "text/csv", headers)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    ssl_context: ssl.SSLContext

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        # Headers and body go out back to back: without this, Nagle + delayed ACK add ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The handshake runs in the handler thread, not in the accept loop.
        return self.ssl_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("sandbox: connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SalesforceSandbox/1.0"
    timeout = 120
    sandbox: SandboxServer

    def handle(self) -> None:
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.debug("sandbox: TLS handshake failed: %s", exc)
            return
        super().handle()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._body_read = False
        if self.sandbox._httpd is None:  # stopped: a pooled keep-alive connection gets dropped
            self.close_connection = True
            return
        try:
            self.sandbox._route(self, method)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as exc:  # an emulator bug: answer like Salesforce's UNKNOWN_EXCEPTION
            log.exception("sandbox: internal error on %s %s", method, self.path)
            self.send_json(
                500,
                [{"message": f"sandbox internal error: {exc}", "errorCode": "UNKNOWN_EXCEPTION"}],
            )
        finally:
            if not self._body_read:
                self.read_body()

    def read_body(self) -> bytes:
        if self._body_read:
            return b""
        self._body_read = True
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send_json(self, status: int, payload: Any) -> None:
        self.send_bytes(status, json.dumps(payload).encode(), "application/json;charset=UTF-8")

    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not self._body_read:
            self.read_body()
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        used = sum(self.sandbox._stats["requests"].values())
        self.send_header("Sforce-Limit-Info", f"api-usage={used}/{DAILY_API_LIMIT}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        # One write for headers and body (one TLS record stream, no extra round trip).
        self._headers_buffer.append(b"\r\n")
        if len(body) <= 65536:
            self._headers_buffer.append(body)
            body_left = b""
        else:
            body_left = body
        self.flush_headers()
        if body_left:
            self.wfile.write(body_left)
        self.sandbox._count_status(status, len(body))

    def reset(self) -> None:
        """Drop the connection without an answer (RST), as a network failure would."""
        if not self._body_read:
            self.read_body()
        self.close_connection = True
        try:
            raw = self.request
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.close()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("sandbox %s - %s", self.address_string(), format % args)


def login(credentials: Mapping[str, str], timeout: float = 30.0) -> tuple[str, str, Any]:
    """OAuth password login against `credentials` (the SALESFORCE_* variables).

    Returns (access_token, instance_url, requests.Session trusting exactly SALESFORCE_CA_FILE).
    """
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = credentials.get("SALESFORCE_CA_FILE") or True
    url = credentials.get("SALESFORCE_LOGIN_URL", "https://login.salesforce.com").rstrip("/")
    resp = session.post(
        f"{url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": credentials["SALESFORCE_CLIENT_ID"],
            "client_secret": credentials["SALESFORCE_CLIENT_SECRET"],
            "username": credentials["SALESFORCE_USERNAME"],
            "password": credentials["SALESFORCE_PASSWORD"]
            + credentials.get("SALESFORCE_SECURITY_TOKEN", ""),
        },
        timeout=timeout,
    )
    if resp.status_code != 200:
        raise PermissionError(f"Salesforce login failed ({resp.status_code}): {resp.text[:200]}")
    body = resp.json()
    return body["access_token"], body["instance_url"], session


def client(credentials: Mapping[str, str]) -> Any:
    """A logged-in `simple_salesforce.Salesforce` for the sandbox (tests, demos)."""
    from simple_salesforce import Salesforce

    token, instance_url, session = login(credentials)
    return Salesforce(
        instance_url=instance_url,
        session_id=token,
        session=session,
        version=credentials.get("SALESFORCE_API_VERSION", "62.0"),
    )
