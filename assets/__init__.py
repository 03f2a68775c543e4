"""Extraction and Python-built assets: one package per source (`assets.salesforce`, ...)."""
