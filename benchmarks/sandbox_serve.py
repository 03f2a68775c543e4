"""How fast the sandbox serves a large object: 1M synthetic Opportunity rows.

    .venv/bin/python -m benchmarks.sandbox_serve [--rows 1000000] [--page-size 2000]

Measured side by side in one run (server in-process, as tests and the demo use it):
  * encode only  — the server's own work per page (JSON records from Arrow), no HTTP;
  * fetch        — REST query + nextRecordsUrl pages over HTTPS, bytes only;
  * fetch+parse  — the same plus json.loads of every page (the floor an extractor cannot beat);
  * bulk CSV     — Bulk API 2.0 results pages (maxRecords 50,000) fetched and parsed by pyarrow.
"""

from __future__ import annotations

import argparse
import io
import json
import time

import pyarrow.csv as pacsv
import requests

from sandbox.api import SandboxServer, login
from sandbox.schema import OBJECTS
from sandbox.store import json_records, synthetic_table

_CSV_PARSE = pacsv.ParseOptions(newlines_in_values=True)


def _rest_pages(session: requests.Session, base: str, headers: dict, soql: str, parse: bool):
    rows = pages = nbytes = 0
    resp = session.get(f"{base}/services/data/v62.0/query/", params={"q": soql}, headers=headers)
    while True:
        resp.raise_for_status()
        content = resp.content
        nbytes += len(content)
        pages += 1
        if parse:
            page = json.loads(content)
            rows += len(page["records"])
            next_url = page.get("nextRecordsUrl")
        else:  # find nextRecordsUrl without parsing the records
            head = content[:300].decode()
            start = head.find('"nextRecordsUrl":"')
            next_url = head[start + 18 : head.index('"', start + 18)] if start >= 0 else None
        if not next_url:
            return rows, pages, nbytes
        resp = session.get(base + next_url, headers=headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=2000)
    args = parser.parse_args()

    t0 = time.perf_counter()
    opps = synthetic_table("Opportunity", args.rows, seed=1, deleted_share=0.0)
    print(
        f"built {opps.num_rows:,} Opportunity rows in {time.perf_counter() - t0:.1f} s "
        f"({opps.nbytes / 1e6:.0f} MB in Arrow)"
    )
    fields = OBJECTS["Opportunity"].field_names
    soql = f"SELECT {', '.join(fields)} FROM Opportunity"

    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, opps.num_rows, args.page_size):
        json_records(opps.slice(start, args.page_size), "Opportunity", fields, "62.0")
    encode, encode_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"server encode only: {encode:.2f} s", flush=True)

    with SandboxServer({"Opportunity": opps}, page_size=args.page_size) as srv:
        token, base, session = login(srv.credentials)
        headers = {"Authorization": f"Bearer {token}"}
        t0, c0 = time.perf_counter(), time.process_time()
        _, pages, nbytes = _rest_pages(session, base, headers, soql, parse=False)
        fetch, fetch_cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"REST fetch: {fetch:.2f} s", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        rows, _, _ = _rest_pages(session, base, headers, soql, parse=True)
        fetch_parse, fetch_parse_cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"REST fetch+parse: {fetch_parse:.2f} s", flush=True)
        assert rows == opps.num_rows, (rows, opps.num_rows)

        t0, c0 = time.perf_counter(), time.process_time()
        job = session.post(
            f"{base}/services/data/v62.0/jobs/query",
            headers=headers,
            json={"operation": "query", "query": soql},
        ).json()
        job_url = f"{base}/services/data/v62.0/jobs/query/{job['id']}"
        while session.get(job_url, headers=headers).json()["state"] != "JobComplete":
            time.sleep(0.01)
        bulk_rows, locator = 0, ""
        while True:
            params = {"maxRecords": 50_000, **({"locator": locator} if locator else {})}
            resp = session.get(f"{job_url}/results", headers=headers, params=params)
            resp.raise_for_status()
            bulk_rows += pacsv.read_csv(io.BytesIO(resp.content), parse_options=_CSV_PARSE).num_rows
            locator = resp.headers["Sforce-Locator"]
            if locator == "null":
                break
        bulk, bulk_cpu = time.perf_counter() - t0, time.process_time() - c0
        assert bulk_rows == opps.num_rows

    n = opps.num_rows
    print(f"REST pages: {pages} x {args.page_size} rows, {nbytes / 1e6:.0f} MB of JSON")
    print("(cpu s = CPU of this process, client and in-process server together: robust to a busy")
    print(" machine, unlike wall seconds)")
    print(f"{'step':<34}{'seconds':>9}{'cpu s':>8}{'rows/s':>12}{'vs fetch+parse':>16}")
    for name, secs, cpu in [
        ("server encode only (no HTTP)", encode, encode_cpu),
        ("REST fetch (bytes only)", fetch, fetch_cpu),
        ("REST fetch + json.loads (floor)", fetch_parse, fetch_parse_cpu),
        ("Bulk 2.0 CSV fetch + parse", bulk, bulk_cpu),
    ]:
        print(f"{name:<34}{secs:>9.2f}{cpu:>8.2f}{n / secs:>12,.0f}{secs / fetch_parse:>15.2f}x")


if __name__ == "__main__":
    main()
