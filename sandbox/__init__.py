"""The local Salesforce: an HTTPS emulator (`sandbox.api`), a synthetic org (`sandbox.org`) and
matching marketing data (`sandbox.marketing`). Nothing here imports Dagster."""
