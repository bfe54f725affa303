"""How the search engine's query recovery (corrections, relaxation) is reported in a search response."""

from __future__ import annotations

from typing import Any

from longtail.search.recovery import Recovery
from longtail.serve.schemas import DidYouMean, Relaxation


def recovery_fields(query: str, recovery: Recovery) -> dict[str, Any]:
    """The `did_you_mean` and `relaxed` fields of a search response for what recovery did to a query."""
    fields: dict[str, Any] = {}
    if recovery.corrections:
        # Corrections are keyed by lower-cased token; a typed word in any case is replaced where it stands.
        corrected = " ".join(recovery.corrections.get(word.lower(), word) for word in query.split())
        fields["did_you_mean"] = DidYouMean(original=query, corrected=corrected, corrections=recovery.corrections)
    if recovery.relaxed:
        searched = query if recovery.dense_only else recovery.searched
        fields["relaxed"] = Relaxation(searched=searched, dropped=recovery.dropped, dense_only=recovery.dense_only, step=recovery.step)
    return fields
