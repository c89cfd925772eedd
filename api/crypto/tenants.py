"""Who owns a ciphertext's keys: each insurer its prices and rebates, each region its people."""

from __future__ import annotations


def insurer_tenant(insurer: str) -> str:
    return f"insurer:{insurer}"


def people_tenant(region: str) -> str:
    return f"people:{region}"
