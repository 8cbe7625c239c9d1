"""Serving bundles to many hosts: the PEP 503 index tree (and, later, registries)."""
