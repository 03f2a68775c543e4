"""`python -m sandbox` — run the Salesforce emulator standalone, or generate an org to files.

    python -m sandbox serve [--org-dir DIR | --scale small] [--port N]
    python -m sandbox generate --scale small|medium|large --out DIR [--seed N] [--landing DIR]

`generate` writes `<SObject>.parquet` + `truth.json` (sandbox.org) to DIR and the matching
marketing landing files (sandbox.marketing) to DIR/landing/marketing unless --landing is given.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _generate_org(scale: str, seed: int) -> Any:
    try:
        from sandbox import org as org_module
    except ImportError as exc:  # pragma: no cover - sandbox.org ships with the project
        raise SystemExit(f"sandbox.org is not available ({exc}); use --org-dir instead") from exc
    return org_module.generate(scale, seed=seed)


def cmd_serve(args: argparse.Namespace) -> int:
    from sandbox.api import SandboxServer

    kwargs: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "page_size": args.page_size,
        "api_version": args.api_version,
        "state_dir": args.state_dir,
    }
    if args.org_dir:
        server = SandboxServer.from_dir(args.org_dir, **kwargs)
        source = f"files in {args.org_dir}"
    else:
        print(f"[sandbox] generating a {args.scale} org (seed {args.seed}) ...", flush=True)
        server = SandboxServer(_generate_org(args.scale, args.seed), **kwargs)
        source = f"generated {args.scale} org, seed {args.seed}"
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    with server:
        counts = ", ".join(f"{n}={server.table(n).num_rows}" for n in server.store.names())
        print(f"[sandbox] Salesforce sandbox serving {source}: {counts}")
        print(f"[sandbox] URL:     {server.url}")
        print(f"[sandbox] CA file: {server.ca_file}")
        print("[sandbox] Point the pipeline at it (throwaway credentials of this run only):")
        for key, value in server.credentials.items():
            print(f"export {key}={shlex.quote(value)}")
        print("[sandbox] Ctrl-C to stop.", flush=True)
        while not stop.is_set():
            time.sleep(0.2)
        stats = server.stats
        print(
            f"[sandbox] stopped after {sum(stats['requests'].values())} requests, "
            f"{stats['pages']} pages, {stats['rows']} rows served"
        )
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from sandbox import org as org_module

    out = Path(args.out)
    started = time.perf_counter()
    org = org_module.generate(args.scale, seed=args.seed)
    org_module.write_org(org, out)
    counts = ", ".join(f"{k}={v.num_rows}" for k, v in org.tables.items())
    print(
        f"[sandbox] wrote {args.scale} org to {out} in {time.perf_counter() - started:.1f} s: "
        f"{counts}"
    )
    try:
        from sandbox import marketing
    except ImportError:
        print("[sandbox] sandbox.marketing not available: no marketing files written")
        return 0
    landing = Path(args.landing) if args.landing else out / "landing" / "marketing"
    written = marketing.write_landing(marketing.generate_marketing(org, seed=args.seed), landing)
    print(f"[sandbox] wrote {len(written)} marketing landing files to {landing}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTPS Salesforce emulator")
    serve.add_argument("--org-dir", help="folder of <SObject>.parquet/.csv files to serve")
    serve.add_argument("--scale", default="small", help="org size to generate without --org-dir")
    serve.add_argument("--seed", type=int, default=42)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 = any free port")
    serve.add_argument("--page-size", type=int, default=2000)
    serve.add_argument("--api-version", default="62.0")
    serve.add_argument("--state-dir", help="where to write the CA file (default: a temp dir)")
    serve.set_defaults(func=cmd_serve)

    gen = sub.add_parser("generate", help="generate a synthetic org to Parquet files")
    gen.add_argument("--scale", default="small", choices=["small", "medium", "large"])
    gen.add_argument("--out", required=True)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--landing", help="marketing landing folder (default: OUT/landing/marketing)")
    gen.set_defaults(func=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
