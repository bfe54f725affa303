"""Every registered implementation, imported in one place so each registry is complete once any name is looked up."""

from longtail.augment import noise, queries, sequences, tabular_gan, text
from longtail.balance import resample, sampling, weights
from longtail.balance import sequences as sequence_balancing
from longtail.models import collaborative, content, fusion, popularity, sequential

__all__ = [
    "collaborative",
    "content",
    "fusion",
    "noise",
    "popularity",
    "queries",
    "resample",
    "sampling",
    "sequence_balancing",
    "sequences",
    "sequential",
    "tabular_gan",
    "text",
    "weights",
]
