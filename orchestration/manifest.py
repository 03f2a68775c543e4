"""`python -m orchestration.manifest`: prepare dbt's manifest.json once (dbt parse) if stale."""

from __future__ import annotations

import logging
import sys


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="[manifest] %(message)s")
    from assets.dbt.project import prepare_manifest

    path = prepare_manifest()
    logging.getLogger(__name__).info("dbt manifest ready: %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
