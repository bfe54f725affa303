"""Synthetic search queries for items that have none: salient keywords (TF-IDF over the catalogue) filled into brand, category and partial-query templates.

No text-to-text model installs offline from a package quickly, so this generator is the documented, always-available
path. It works for English and Chinese (jieba tokens). Every query row is `synthetic = True` and must never be
used as evaluation data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import polars as pl

from longtail.balance.component import WholeTableComponent, register
from longtail.data.columns import SYNTHETIC, WEIGHT
from longtail.data.tokenize import tokenize

TEMPLATES = ("keywords", "brand", "category", "long", "partial")
# Templates closer to what shoppers type (a typo, a size with its unit), for training encoders on synthetic queries.
SHOPPER_TEMPLATES = ("keywords", "measure", "typo", "long", "brand", "category", "partial")
ALL_TEMPLATES = (*TEMPLATES, "typo", "measure")
# A number with a short unit after it ("18 in.", "16 oz", "150mm", "18V"): units are short words in most catalogues.
_MEASURE = re.compile(r"(?<![\w/.-])(\d+(?:[./-]\d+)*)\s?([A-Za-z]{1,3}\.?)(?![\w])")
TYPO_MIN_LENGTH = 5
# Function words that TF-IDF can still rank high in short texts; content words are left to the statistics.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "or",
        "the",
        "of",
        "for",
        "to",
        "in",
        "on",
        "with",
        "by",
        "from",
        "at",
        "as",
        "is",
        "are",
        "be",
        "this",
        "that",
        "it",
        "its",
        "x",
        "pcs",
        "pc",
        "pack",
        "set",
        "inch",
        "inches",
        "type",
        "的",
        "了",
        "是",
        "在",
        "和",
        "与",
        "也",
        "就",
        "都",
        "很",
        "还",
        "有",
        "我",
        "你",
        "他",
        "她",
        "它",
        "这",
        "那",
        "个",
        "吗",
        "吧",
        "呢",
        "啊",
        "不",
        "没",
        "没有",
        "非常",
        "一个",
        "比较",
        "就是",
        "还是",
        "但是",
        "因为",
        "所以",
    ]
)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
MIN_TEXTS_FOR_SHARED_TERMS = 20
BRAND_TERMS_SKIPPED = 3
QUERY_SCHEMA = {"item_id": pl.String, "query": pl.String, "template": pl.String, SYNTHETIC: pl.Boolean}


def keyword_terms(text: str) -> list[str]:
    """Candidate keywords of a text in order: search tokens without stopwords, bare numbers or single characters."""
    return [t for t in tokenize(text) if len(t) > 1 and t not in STOPWORDS and not t.isdigit()]


def join_terms(terms: Sequence[str]) -> str:
    """Terms as a query: Chinese terms are written together, other terms separated by spaces."""
    query = ""
    for term in terms:
        glued = query and (_CJK.search(query[-1]) or _CJK.search(term[0]))
        query += term if not query or glued else f" {term}"
    return query


def salient_keywords(texts: Sequence[str], top_k: int = 4) -> list[list[str]]:
    """Per text its `top_k` most distinctive terms by TF-IDF over all texts (words before terms with digits), in text order.

    In a catalogue of 20 or more texts, terms of a single text (part numbers, typos) are left out: nobody searches
    for them. A term contained in another term of the same text (jieba's search mode yields '保温' inside '保温杯') is skipped.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    min_df = 2 if len(texts) >= MIN_TEXTS_FOR_SHARED_TERMS else 1
    vectoriser = TfidfVectorizer(tokenizer=keyword_terms, lowercase=False, token_pattern=None, sublinear_tf=True, min_df=min_df)
    matrix = vectoriser.fit_transform(texts).tocsr()
    vocabulary = vectoriser.get_feature_names_out()
    keywords = []
    for row, text in enumerate(texts):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        terms, scores = vocabulary[matrix.indices[start:end]], matrix.data[start:end]
        # words before codes with digits (sizes, part numbers): shoppers type "ball valve" more often than "wog200"
        has_digit = np.array([any(ch.isdigit() for ch in term) for term in terms], dtype=bool)
        ranked = [str(term) for term in terms[np.lexsort((terms, -scores, has_digit))]]
        chosen = [term for term in ranked if not any(term != other and term in other for other in ranked)][:top_k]
        in_text = keyword_terms(text)
        # a text made only of its own terms still gets its first terms rather than nothing
        chosen = chosen or list(dict.fromkeys(in_text))[:top_k]
        order = {term: position for position, term in reversed(list(enumerate(in_text)))}
        keywords.append(sorted(chosen, key=lambda term: order.get(term, len(order))))
    return keywords


def category_leaf(category: str | None) -> str | None:
    """The most specific part of a category: the last segment of 'A > B > C', or the last two words of a flat path."""
    if not category:
        return None
    if ">" in category:
        return category.rsplit(">", 1)[-1].strip() or None
    words = category.split()
    return " ".join(words[-2:]).lower() if len(words) > 1 and not _CJK.search(category) else category.lower()


def partial(query: str) -> str | None:
    """The query as typed halfway: its last word (or Chinese character run) cut to about half, at least two characters kept."""
    head, _, last = query.rpartition(" ")
    keep = max(2, (len(last) + 1) // 2)
    if len(last) <= keep:
        return None
    return f"{head} {last[:keep]}".strip()


def typo(query: str) -> str | None:
    """The query with one slip of the fingers: the two middle letters of its longest Latin word swapped (none if no word is long enough)."""
    words = query.split(" ")
    longest = max(range(len(words)), key=lambda i: (len(words[i]), -i))
    word = words[longest]
    if len(word) < TYPO_MIN_LENGTH or not word.isalpha() or _CJK.search(word):
        return None
    middle = len(word) // 2
    swapped = word[: middle - 1] + word[middle] + word[middle - 1] + word[middle + 1 :]
    return None if swapped == word else " ".join([*words[:longest], swapped, *words[longest + 1 :]])


def first_measure(text: str) -> str | None:
    """The first number-with-unit of a text, lower-cased, as a shopper would type it ("18 in.", "16 oz")."""
    found = _MEASURE.search(text)
    return None if found is None else f"{found.group(1)} {found.group(2).lower()}"


def item_queries(keywords: Sequence[str], brand: str | None, category: str | None, measure: str | None = None) -> dict[str, str]:
    """template -> query for one item from its keywords (brand words already removed); templates missing an ingredient are left out."""
    queries: dict[str, str] = {}
    if keywords:
        queries["keywords"] = join_terms(keywords[:2])
        if brand:
            queries["brand"] = join_terms([brand.lower(), keywords[0]])
        leaf = category_leaf(category)
        if leaf and keywords[0] not in leaf:
            queries["category"] = join_terms([keywords[0], leaf])
        if len(keywords) >= 3:
            queries["long"] = join_terms(keywords[:3])
        cut = partial(queries["keywords"])
        if cut:
            queries["partial"] = cut
        slipped = typo(queries["keywords"])
        if slipped:
            queries["typo"] = slipped
        if measure:
            queries["measure"] = f"{keywords[0]} {measure}"
    return queries


def generate_queries(items: pl.DataFrame, per_item: int = 3, keywords: int = 4, templates: Sequence[str] = TEMPLATES) -> pl.DataFrame:
    """`item_id`, `query`, `template`, `synthetic` (True): up to `per_item` distinct queries per item, templates in the given order."""
    texts = [
        " ".join(part for part in (title, description) if part)
        for title, description in items.select("title", pl.col("description") if "description" in items.columns else pl.lit(None, pl.String)).rows()
    ]
    brands = items["brand"].to_list() if "brand" in items.columns else [None] * items.height
    categories = items["category"].to_list() if "category" in items.columns else [None] * items.height
    # extra candidates, because the brand's own words are taken out: the brand has a template of its own
    salient = salient_keywords(texts, keywords + BRAND_TERMS_SKIPPED)
    rows: list[tuple[str, str, str, bool]] = []
    for item_id, text, terms, brand, category in zip(items["item_id"].to_list(), texts, salient, brands, categories, strict=True):
        brand_terms = set(tokenize(brand or ""))
        product_terms = [t for t in terms if t not in brand_terms] or terms
        made = item_queries(product_terms[:keywords], brand, category, first_measure(text))
        distinct = dict.fromkeys((made[t], t) for t in templates if t in made)
        seen: set[str] = set()
        for query, template in distinct:
            if query not in seen and len(seen) < per_item:
                seen.add(query)
                rows.append((item_id, query, template, True))
    return pl.DataFrame(rows, schema=QUERY_SCHEMA, orient="row")


@register
class SyntheticQueries(WholeTableComponent):
    """Add generated (item_id, query) rows for every catalogue item without a query in the training pairs table."""

    needs_whole_table = "it finds the catalogue items with no query anywhere in the table and weighs keywords over every item text"

    name = "synthetic-queries"

    def __init__(self, items: pl.DataFrame, per_item: int = 3, keywords: int = 4, templates: Sequence[str] = TEMPLATES) -> None:
        self.items, self.per_item, self.keywords, self.templates = items, per_item, keywords, templates

    def apply(self, table: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
        missing = self.items.join(table.select("item_id").unique(), on="item_id", how="anti")
        if missing.height == 0:
            return table
        generated = generate_queries(missing, self.per_item, self.keywords, self.templates).drop("template").with_columns(pl.lit(1.0).alias(WEIGHT))
        return pl.concat([table, generated.select(table.columns).cast(table.schema)])
