"""Keyed pseudonyms for user ids: HMAC-SHA256, truncated and prefixed."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from longtail.core.config import PrivacyConfig
from longtail.core.errors import PrivacyError

# Shorter keys make the pseudonyms guessable by brute force over the key.
MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class Pseudonymiser:
    """Maps raw user ids to stable pseudonyms under one secret key."""

    key: bytes
    prefix: str = "u_"
    hex_chars: int = 16

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise PrivacyError(f"the pseudonym key has {len(self.key)} bytes; use at least {MIN_KEY_BYTES} random bytes")

    def __repr__(self) -> str:
        # The key never appears in logs or tracebacks.
        return f"Pseudonymiser(prefix={self.prefix!r}, hex_chars={self.hex_chars})"

    def pseudonym(self, user_id: str) -> str:
        """The pseudonym of one raw id."""
        digest = hmac.new(self.key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return self.prefix + digest[: self.hex_chars]

    def apply(self, table: pl.DataFrame, column: str = "user_id") -> pl.DataFrame:
        """The table with `column` replaced by pseudonyms; each distinct id is hashed once."""
        if column not in table.columns:
            return table
        distinct = table.get_column(column).drop_nulls().unique()
        # polars has no keyed hash, so HMAC runs in Python, but only over distinct ids (users << events).
        mapping = pl.Series([self.pseudonym(str(value)) for value in distinct], dtype=pl.String)
        return table.with_columns(pl.col(column).cast(pl.String).replace_strict(distinct.cast(pl.String), mapping, default=None, return_dtype=pl.String))


def pseudonymiser_from_config(config: PrivacyConfig, environ: Mapping[str, str] | None = None) -> Pseudonymiser:
    """The pseudonymiser whose key comes from the config or, failing that, from the environment variable it names."""
    environment = os.environ if environ is None else environ
    secret = config.key.get_secret_value() if config.key is not None else environment.get(config.key_env, "")
    if not secret:
        raise PrivacyError(
            f"pseudonymisation is enabled but no key is set: export {config.key_env}=<at least {MIN_KEY_BYTES} random bytes> "
            "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`), or set privacy.pseudonymise: false"
        )
    return Pseudonymiser(secret.encode("utf-8"), config.pseudonym_prefix, config.pseudonym_hex_chars)
