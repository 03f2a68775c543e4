"""When an incremental dbt build must be a full refresh because the project's code changed.

The incremental models detect changes of their own file and of the data (see
macros/incremental_by_opportunity.sql) but not a change to a macro they use or to the SQL of a
model upstream of them. This module fingerprints exactly that code from a dbt manifest:

* the SQL of every macro of the project (`macro_sql`; dbt records no checksum for macros),
* the checksum of every model and seed an incremental model depends on, directly or not.

The fingerprint of the last successful whole build is kept per warehouse in
`<SALESOPS_HOME>/dbt/code_fingerprint.json`; a build whose fingerprint differs (or with nothing
recorded) runs with `--full-refresh`. Pure Python on plain dicts and paths, no Dagster.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "code_fingerprint.json"


def incremental_models(manifest: dict) -> list[str]:
    """Unique ids of the manifest's incremental models."""
    return sorted(
        uid
        for uid, node in manifest.get("nodes", {}).items()
        if node.get("resource_type") == "model"
        and node.get("config", {}).get("materialized") == "incremental"
    )


def upstream_nodes(manifest: dict, roots: list[str]) -> set[str]:
    """Every model and seed the `roots` depend on, directly or through other nodes."""
    nodes = manifest.get("nodes", {})
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node = nodes.get(stack.pop())
        if node is None:
            continue
        for parent in node.get("depends_on", {}).get("nodes", []):
            if parent in nodes and parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return {uid for uid in seen if nodes[uid].get("resource_type") in ("model", "seed")}


def code_fingerprint(manifest: dict, package: str = "salesops") -> str:
    """sha256 over the project's macros and the code upstream of its incremental models."""
    parts: list[str] = []
    for uid, macro in sorted(manifest.get("macros", {}).items()):
        if macro.get("package_name") == package:
            parts.append(f"{uid}\n{macro.get('macro_sql', '')}")
    nodes = manifest.get("nodes", {})
    for uid in sorted(upstream_nodes(manifest, incremental_models(manifest))):
        parts.append(f"{uid}\n{nodes[uid].get('checksum', {}).get('checksum', '')}")
    return hashlib.sha256("\n\x00".join(parts).encode()).hexdigest()


def recorded_fingerprint(state_dir: Path) -> str | None:
    """The fingerprint of the last successful whole build, or None (never built / unreadable)."""
    path = state_dir / FINGERPRINT_FILE
    try:
        return json.loads(path.read_text())["fingerprint"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("%s unreadable (%s): treated as no recorded build", path, exc)
        return None


def record_fingerprint(state_dir: Path, fingerprint: str) -> None:
    """Record a successful whole build's fingerprint (atomic replace)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / (FINGERPRINT_FILE + ".tmp")
    tmp.write_text(json.dumps({"fingerprint": fingerprint}))
    tmp.replace(state_dir / FINGERPRINT_FILE)


def full_refresh_reason(manifest: dict, state_dir: Path) -> str | None:
    """Why this build must be a full refresh, or None when the code is as last built."""
    recorded = recorded_fingerprint(state_dir)
    if recorded is None:
        return "no code fingerprint recorded for this warehouse"
    if recorded != code_fingerprint(manifest):
        return "a macro or a model upstream of an incremental model changed since the last build"
    return None
