"""Finance exports, the published analyst database and report renderers."""
