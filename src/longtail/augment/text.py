"""Word-level text augmentation (EDA: synonym replacement, random insertion, swap, deletion) for English and Chinese.

Synonyms come from the catalogue itself, offline: words are near each other when they keep the same company
in item texts (positive PMI of co-occurrence inside a text, reduced by SVD, cosine nearest neighbours). Chinese
text is cut into words by jieba. No thesaurus or download is needed, and shop jargon gets neighbours too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from longtail.balance.component import Component, register
from longtail.balance.rows import RowDraws, component_stream, keep_with_probability, map_rows, with_copies
from longtail.core.errors import LongtailError
from longtail.core.executors import Rows, RowsT, TableMapper
from longtail.data.columns import SYNTHETIC
from longtail.data.tokenize import has_chinese, is_word, segment

OPERATIONS = ("synonym", "insert", "swap", "delete")


@dataclass
class Synonyms:
    """Each vocabulary word's nearest neighbours in the catalogue's own co-occurrence space, closest first."""

    neighbours: dict[str, list[str]]

    @classmethod
    def from_texts(
        cls, texts: Sequence[str], per_word: int = 5, dimensions: int = 64, min_count: int = 3, min_similarity: float = 0.5, max_text_share: float = 0.05
    ) -> Synonyms:
        """Fit on texts: words seen in at least `min_count` texts, up to `per_word` neighbours above `min_similarity`.

        Words in more than `max_text_share` of the texts (function words like "the", 的, 是) get no neighbours
        and are nobody's neighbour: swapping them says nothing about the item.
        """
        documents = [{token.lower() for token in segment(text) if is_word(token)} for text in texts]
        frequency = Counter(word for document in documents for word in document)
        ceiling = max(min_count, max_text_share * len(documents))
        vocabulary = sorted(word for word, count in frequency.items() if min_count <= count <= ceiling)
        if len(vocabulary) < 3:
            return cls({})
        index = {word: i for i, word in enumerate(vocabulary)}
        rows = [r for r, document in enumerate(documents) for word in document if word in index]
        columns = [index[word] for document in documents for word in document if word in index]
        incidence = sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(documents), len(vocabulary)))
        vectors = _ppmi_vectors((incidence.T @ incidence).tocoo(), min(dimensions, len(vocabulary) - 2))
        neighbours = {}
        for start in range(0, len(vocabulary), 1024):
            similarity = vectors[start : start + 1024] @ vectors.T
            similarity[np.arange(similarity.shape[0]), np.arange(start, start + similarity.shape[0])] = -np.inf
            best = np.argsort(-similarity, axis=1)[:, :per_word]
            for row, candidates in enumerate(best):
                close = [vocabulary[c] for c in candidates if similarity[row, c] >= min_similarity]
                if close:
                    neighbours[vocabulary[start + row]] = close
        return cls(neighbours)

    def of(self, word: str) -> list[str]:
        """The neighbours of a word (case-insensitive); empty when it has none."""
        return self.neighbours.get(word.lower(), [])


def _ppmi_vectors(cooccurrence: sp.coo_matrix, dimensions: int) -> np.ndarray:
    """L2-normalised rows of the truncated SVD of the positive PMI of a word-word co-occurrence matrix."""
    totals = np.asarray(cooccurrence.sum(axis=1)).ravel()
    off_diagonal = cooccurrence.row != cooccurrence.col
    row, col, count = cooccurrence.row[off_diagonal], cooccurrence.col[off_diagonal], cooccurrence.data[off_diagonal]
    pmi = np.log(count * totals.sum() / (totals[row] * totals[col]))
    positive = pmi > 0
    matrix = sp.csr_matrix((pmi[positive], (row[positive], col[positive])), shape=cooccurrence.shape)
    left, singular, _ = svds(matrix, k=dimensions, random_state=0)
    vectors = left * np.sqrt(singular)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def augment_words(words: list[str], operation: str, rate: float, synonyms: Synonyms, rng: np.random.Generator) -> list[str]:
    """One EDA operation on a text's pieces; about `rate` x the words change, the rest stay in place.

    Only pieces that are words (not punctuation) are replaced, moved or deleted; a text keeps at least one word.
    """
    words = list(words)
    positions = [i for i, w in enumerate(words) if is_word(w)]
    changes = max(1, round(rate * len(positions)))
    with_synonyms = [i for i in positions if synonyms.of(words[i])]
    if operation == "synonym" and with_synonyms:
        for i in rng.choice(with_synonyms, size=min(changes, len(with_synonyms)), replace=False):
            words[i] = str(rng.choice(synonyms.of(words[i])))
    elif operation == "insert" and with_synonyms:
        sources = [words[i] for i in with_synonyms]
        for _ in range(changes):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(synonyms.of(str(rng.choice(sources))))))
    elif operation == "swap" and len(positions) >= 2:
        for _ in range(changes):
            a, b = rng.choice(positions, size=2, replace=False)
            words[a], words[b] = words[b], words[a]
    elif operation == "delete" and len(positions) >= 2:
        dropped = set(rng.choice(positions, size=min(changes, len(positions) - 1), replace=False).tolist())
        words = [w for i, w in enumerate(words) if i not in dropped]
    return words


def augment_text(text: str, operation: str, rate: float, synonyms: Synonyms, rng: np.random.Generator) -> str:
    """The text after one EDA operation, its pieces joined the way the language writes them."""
    joiner = "" if has_chinese(text) else " "
    return joiner.join(augment_words(segment(text), operation, rate, synonyms, rng))


@register
class TextAugmentation(Component):
    """`copies` augmented versions of every original row's text, each by one operation drawn from `operations`.

    Synonyms are fitted on the table's own original texts (the catalogue vocabulary): all of them up to `fit_texts`,
    beyond that a uniform sample of about `fit_texts` of them, chosen row by row and collected to the driver (the
    fit is a co-occurrence SVD over the vocabulary, so it needs its texts in one place). The augmentation itself runs
    per row, each copy from its row's own generator, so it runs per partition. New rows are synthetic and keep every
    other column of their source row, so an item's augmented texts stay attached to it.
    """

    name = "text-eda"

    def __init__(
        self,
        column: str = "text",
        operations: Sequence[str] = OPERATIONS,
        rate: float = 0.1,
        copies: int = 1,
        neighbours: int = 5,
        min_similarity: float = 0.5,
        fit_texts: int = 200_000,
    ) -> None:
        unknown = set(operations) - set(OPERATIONS)
        if unknown or not operations or not 0 < rate < 1 or copies < 1:
            raise LongtailError(f"text-eda: operations must be among {OPERATIONS} (got {sorted(unknown)}), 0 < rate < 1, copies >= 1")
        self.column = column
        self.operations = list(operations)
        self.rate = rate
        self.copies = copies
        self.neighbours = neighbours
        self.min_similarity = min_similarity
        self.fit_texts = fit_texts

    def fit_sample(self, table: Rows, map_table: TableMapper, stream: int) -> list[str]:
        """The original texts the synonyms are fitted on (all, or about `fit_texts` chosen row by row), sorted."""
        texts = table.select(self.column, SYNTHETIC)
        originals = int(map_table(texts, lambda batch: pl.DataFrame({"rows": [int((~batch[SYNTHETIC]).sum())]}), {"rows": pl.Int64})["rows"].sum())
        share = min(1.0, self.fit_texts / max(originals, 1))

        def pick(batch: pl.DataFrame, draws: RowDraws) -> pl.DataFrame:
            return keep_with_probability(batch, np.where(batch[SYNTHETIC].to_numpy(), 0.0, share), draws)

        chosen = map_rows(texts, pick, map_table, stream)
        # the sample comes to this process (the fit needs it in one place): at most about fit_texts texts
        return sorted(text or "" for text in map_table(chosen, lambda batch: batch.select(self.column), {self.column: pl.String})[self.column])

    def apply_mapped(self, table: RowsT, rng: np.random.Generator, map_table: TableMapper) -> RowsT:
        stream = component_stream(rng, self.name)
        synonyms = Synonyms.from_texts(self.fit_sample(table, map_table, stream), per_word=self.neighbours, min_similarity=self.min_similarity)

        def augment(batch: pl.DataFrame, draws: RowDraws) -> pl.DataFrame:
            rows = np.flatnonzero(~batch[SYNTHETIC].to_numpy())
            sources = batch[rows]
            texts = sources[self.column].fill_null("").to_list()
            copies = []
            for copy in range(1, self.copies + 1):
                generators = [draws.generator(int(row), copy) for row in rows]
                augmented = [augment_text(text, str(g.choice(self.operations)), self.rate, synonyms, g) for text, g in zip(texts, generators, strict=True)]
                copies.append(sources.with_columns(pl.Series(self.column, augmented, dtype=pl.String)))
            return with_copies(batch, copies)

        return map_rows(table, augment, map_table, stream)
