"""Split English and Chinese text into lower-case search tokens (jieba for Chinese, a word regex otherwise)."""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from types import ModuleType

# Han ideographs plus CJK punctuation/full-width forms: any of them means jieba is needed.
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_WORD = re.compile(r"\w+", re.UNICODE)


@lru_cache(maxsize=1)
def _jieba() -> ModuleType:
    """The jieba module, initialised once per process (its dictionary takes a while to load)."""
    import jieba

    # jieba logs its dictionary loading at INFO on every process start.
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def words(text: str) -> list[str]:
    """Lower-cased runs of letters and digits; a run of Chinese characters stays one word (no segmentation)."""
    return _WORD.findall(text.lower())


def tokenize(text: str) -> list[str]:
    """Search tokens of a text: Chinese is segmented by jieba (search mode, so compounds also yield their parts)."""
    if not text:
        return []
    lowered = text.lower()
    if _CJK.search(lowered) is None:
        # Plain-regex path: jieba is ~50x slower and gives the same tokens for text without Chinese.
        return words(lowered)
    return [token for token in _jieba().cut_for_search(lowered) if _WORD.fullmatch(token)]


def is_latin_word(token: str) -> bool:
    """True for tokens where an edit-distance typo makes sense (not Chinese, not pure digits)."""
    return token.isascii() and token.isalpha()


def has_chinese(text: str) -> bool:
    """True when the text holds any Han ideograph or CJK punctuation (so words need jieba, not spaces)."""
    return _CJK.search(text) is not None


def segment(text: str) -> list[str]:
    """The text's pieces in order, case and punctuation kept: jieba's precise mode for Chinese, whitespace otherwise.

    Joining the pieces ("" for Chinese, " " otherwise) gives the text back (up to runs of spaces), so edits to
    single words stay local.
    """
    return list(_jieba().cut(text)) if has_chinese(text) else text.split()


def is_word(token: str) -> bool:
    """True for a piece made of letters or digits only (not punctuation or spaces)."""
    return _WORD.fullmatch(token) is not None
