"""Find and replace personal data in free text (English and Chinese): emails, phones, addresses, cards, ID numbers."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

PII_KINDS: tuple[str, ...] = ("EMAIL", "CN_ID", "CARD", "PHONE", "ADDRESS")

# ASCII and full-width digits: Chinese text often writes numbers full-width.
_D = "[0-9０-９]"
_TO_ASCII_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
# A match must not continue a longer alphanumeric token (part numbers, SKUs).
_NOT_AFTER_TOKEN = r"(?<![0-9０-９A-Za-z])"
_NOT_BEFORE_TOKEN = r"(?![0-9０-９A-Za-z])"
# Rows without any of these characters cannot hold PII any rule finds, so Python never sees them.
PREFILTER_PATTERN = r"[@＠0-9０-９号]"

EMAIL = (
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*[@＠]"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)

# Region (6) + birth date YYYYMMDD + sequence (3) + check character; spaces between the blocks are tolerated.
CN_ID = (
    rf"{_NOT_AFTER_TOKEN}[1-8１-８]{_D}{{5}} ?(?:18|19|20){_D}{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]{_D}|3[01]) ?{_D}{{3}}[0-9０-９Xx]"
    rf"{_NOT_BEFORE_TOKEN}"
)

# Groups of four with one consistent separator (16 or 19 digits), Amex 4-6-5, or an unbroken run of 13-19 digits.
CARD = (
    rf"{_NOT_AFTER_TOKEN}(?:{_D}{{4}}(?P<sep>[ -]){_D}{{4}}(?P=sep){_D}{{4}}(?P=sep){_D}{{4}}(?:(?P=sep){_D}{{3}})?"
    rf"|{_D}{{4}}(?P<amex>[ -]){_D}{{6}}(?P=amex){_D}{{5}}|{_D}{{13,19}}){_NOT_BEFORE_TOKEN}"
)

_SEP = r"[ .\-‐–]?"
PHONE_PATTERNS = (
    # Chinese mobile, optionally +86: 13812345678, 138-1234-5678, +86 138 1234 5678.
    rf"{_NOT_AFTER_TOKEN}(?:(?:\+|00)86{_SEP}|\(\+?86\){_SEP})?[1１][3-9３-９]{_D}(?:[ \-]?{_D}{{4}}){{2}}{_NOT_BEFORE_TOKEN}",
    # Chinese landline with a separated or bracketed area code: 010-12345678, (0755) 8888 6666.
    rf"{_NOT_AFTER_TOKEN}(?:(?:\+|00)86{_SEP}|\(\+?86\){_SEP})?(?:\(0{_D}{{2,3}}\){_SEP}|0{_D}{{2,3}}[ \-])"
    rf"{_D}{{3,4}}[ \-]?{_D}{{4}}{_NOT_BEFORE_TOKEN}",
    # North American numbers with separators: (415) 555-0132, 415.555.0132, +1 415 555 0132, 1-800-555-0199.
    rf"{_NOT_AFTER_TOKEN}(?:(?:\+|00)?1{_SEP})?(?:\([2-9]{_D}{{2}}\){_SEP}|[2-9]{_D}{{2}}[ .\-])[2-9]{_D}{{2}}[ .\-]{_D}{{4}}"
    rf"{_NOT_BEFORE_TOKEN}",
    # International with a + country code and 7-14 more digits in groups: +44 20 7946 0958, +49 (30) 901820.
    rf"(?<![0-9A-Za-z+])\+[1-9]{_D}{{0,2}}(?:{_SEP}\(?{_D}{{1,5}}\)?){{2,6}}{_NOT_BEFORE_TOKEN}",
    # Any 7-15 digit number right after a phone keyword and a colon or space: "Tel: 2345 6789", "电话：87654321".
    rf"(?i)(?:\btel\b|\bphone\b|\bmobile\b|\bcell\b|\bcall\b|\bfax\b|whatsapp|电话|手机|手机号|联系方式|致电|拨打|热线)"
    rf"[\s:：,，是为号码#]{{0,4}}(?P<pii>\+?{_D}(?:[ .\-]?{_D}){{6,14}}){_NOT_BEFORE_TOKEN}",
)

# Street types that rarely mean anything else right after "<number> <Name>".
_STREET_TYPES = "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Alley|Crescent"
# Types that are also product words ("Phillips Drive", "Blue Square", "3 Way"); they need an address-like ending.
_WEAK_STREET_TYPES = "Drive|Dr|Way|Court|Ct|Place|Pl|Circle|Cir|Square|Sq|Trail|Trl|Plaza|Close|Row"
_ADDRESS_END = r"(?=[ ]?(?:$|[,;)\]，。；）\u4e00-\u9fff]|\.(?:$|\s)|[ ](?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|#)))"
# Words that follow a number in product text ("12 Inch Square", "1 TB Hard Drive") and never name a street.
_NOT_STREET_NAMES = (
    "inch|inches|in|pack|pcs|pc|piece|pieces|count|ct|mm|cm|m|ft|feet|foot|oz|lb|lbs|gallon|gal|ml|l|liter|litre|"
    "quart|pint|gauge|ga|awg|v|volt|w|watt|amp|a|psi|x|and|or|with|for|of|the|per|to|on|by|hole|tier|well|port|"
    "position|pin|way|sided|side|layer|ply|compartment|section|stage|speed|channel|gang|pole|wire|shelf|drawer|cup|"
    "degree|degrees|grit|thread|tpi|gram|grams|g|kg|pound|pounds|ounce|ounces|sheet|sheets|roll|rolls|box|case|bag|"
    "tb|gb|mb|hard|disk|flash|phillips|slotted|torx|hex|square|star|socket|allen|pozidriv|combination|belt|direct|gear"
)
_NAME_WORD = rf"(?!(?:{_NOT_STREET_NAMES})\b)[A-Za-z][A-Za-z'\-]*\.?"
# A house number never continues a decimal, a size like 7.25, a "#2" screw size or a part number.
_HOUSE_NUMBER = r"(?<![0-9０-９A-Za-z.#/\-])[0-9０-９]{1,6}[A-Za-z]?"
_DIRECTION = r"(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?"
ADDRESS_PATTERNS = (
    # English: house number, optional direction, 1-4 name words, a street type; then optional unit, city, state, ZIP.
    rf"(?i:{_HOUSE_NUMBER}(?: {_DIRECTION})?(?: {_NAME_WORD}){{1,4}} "
    rf"(?:(?:{_STREET_TYPES})\.?(?![A-Za-z])|(?:{_WEAK_STREET_TYPES})\.?(?![A-Za-z]){_ADDRESS_END})(?: {_DIRECTION}(?![A-Za-z]))?"
    rf"(?:,? (?:Apt|Apartment|Suite|Ste|Unit|Flat|Room|#)\.? ?#?[0-9A-Za-z\-]+)?)"
    rf"(?:, ?[A-Z][a-z]+(?: [A-Z][a-z]+){{0,2}})?(?:,? [A-Z]{{2}})?(?: {_D}{{5}}(?:-{_D}{{4}})?)?",
    rf"(?i)\bP\.? ?O\.? ?Box ?#?{_D}{{1,7}}\b",
)

_CJK_NAME = r"(?:(?![在住于是的了我你他她家到址送寄从和与及把被给向往近靠离对也就还很又这那个有])[\u4e00-\u9fff])"
_CN_NUMBER = rf"(?:{_D}+|[一二三四五六七八九十百零〇]+)"
_CN_ADMIN = rf"(?:{_CJK_NAME}{{1,8}}?(?:省|自治区|特别行政区|市|自治州|州|区|县|旗|镇|乡))"
_CN_UNIT = rf"(?:(?:{_D}+|[A-Za-z])(?:号楼|栋|幢|座|楼|层|单元|室|号))"
ADDRESS_PATTERNS_ZH = (
    # Street plus house number (Chinese numerals only before 号, so "弄一弄" is not a lane): 北京市朝阳区建国路88号3号楼501室.
    rf"{_CN_ADMIN}*{_CJK_NAME}{{1,8}}?(?:大道|大街|路|街|巷|胡同|弄)(?:[一二三四五六七八九十]+段)?"
    rf"(?:{_CN_NUMBER}(?:之{_D}+)?号|{_D}+弄)(?:{_CN_UNIT})*",
    # Residential compound plus building and unit: 阳光花园3栋2单元501室.
    rf"{_CN_ADMIN}*{_CJK_NAME}{{1,10}}?(?:小区|花园|公寓|大厦|新村|家园|苑){_CN_UNIT}{{1,4}}",
    # Building, unit and room without a name: 5号楼2单元301室.
    rf"{_D}+(?:号楼|栋|幢)(?:{_D}+单元)?{_D}+(?:室|号(?!楼))",
)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text.translate(_TO_ASCII_DIGITS))


def luhn_valid(number: str) -> bool:
    """True when the digits of `number` pass the Luhn check used by payment cards."""
    digits = [int(d) for d in _digits(number)]
    checksum = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    return checksum % 10 == 0


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def cn_id_valid(number: str) -> bool:
    """True when an 18-character Chinese resident ID number has a correct ISO 7064 check character."""
    body = number.translate(_TO_ASCII_DIGITS).replace(" ", "").upper()
    if len(body) != 18 or not body[:17].isdigit():
        return False
    return _ID_CHECK[sum(int(d) * w for d, w in zip(body[:17], _ID_WEIGHTS, strict=True)) % 11] == body[17]


def _card_valid(number: str) -> bool:
    return 13 <= len(_digits(number)) <= 19 and luhn_valid(number)


def _phone_valid(number: str) -> bool:
    return 7 <= len(_digits(number)) <= 15


# Order, tracking and part numbers can look like phone or card numbers; the words before them say which.
_NOT_PII_BEFORE = re.compile(r"(?i)(?:订单|单号|运单|快递单|编号|型号|货号|order|tracking|invoice|model|part|sku|item)[^0-9０-９]{0,6}$")


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None
    reject_after: re.Pattern[str] | None = None


# Order matters: an ID or card number must be claimed before the phone rules see its digits.
RULES: tuple[_Rule, ...] = (
    _Rule("EMAIL", re.compile(EMAIL)),
    _Rule("CN_ID", re.compile(CN_ID), cn_id_valid),
    _Rule("CARD", re.compile(CARD), _card_valid, _NOT_PII_BEFORE),
    *(_Rule("PHONE", re.compile(pattern), _phone_valid, _NOT_PII_BEFORE) for pattern in PHONE_PATTERNS),
    *(_Rule("ADDRESS", re.compile(pattern)) for pattern in ADDRESS_PATTERNS + ADDRESS_PATTERNS_ZH),
)


def placeholder(kind: str) -> str:
    """The typed token that replaces one piece of PII, e.g. '[EMAIL]'."""
    return f"[{kind}]"


def _apply_rule(rule: _Rule, text: str, counts: dict[str, int]) -> str:
    def replace(match: re.Match[str]) -> str:
        # Rules with a `pii` group (keyword + number) keep the keyword and replace only the number.
        span = match.span("pii") if "pii" in rule.pattern.groupindex else match.span()
        found = match.string[span[0] : span[1]]
        if rule.valid is not None and not rule.valid(found):
            return match.group(0)
        if rule.reject_after is not None and rule.reject_after.search(match.string, max(0, span[0] - 16), span[0]):
            return match.group(0)
        counts[rule.kind] += 1
        whole = match.group(0)
        offset = match.start()
        return whole[: span[0] - offset] + placeholder(rule.kind) + whole[span[1] - offset :]

    return rule.pattern.sub(replace, text)


def scrub_text(text: str) -> tuple[str, dict[str, int]]:
    """The text with every PII match replaced by a typed placeholder, and the number of replacements per kind."""
    counts = dict.fromkeys(PII_KINDS, 0)
    for rule in RULES:
        text = _apply_rule(rule, text, counts)
    return text, counts


def scrub_column(table: pl.DataFrame, column: str) -> tuple[pl.DataFrame, dict[str, int]]:
    """The table with one text column scrubbed, and replacement counts per kind; Python sees only pre-filtered rows."""
    totals = dict.fromkeys(PII_KINDS, 0)
    if column not in table.columns:
        return table, totals
    texts = table.get_column(column)
    rows = np.flatnonzero(texts.str.contains(PREFILTER_PATTERN).fill_null(False).to_numpy())
    if rows.size == 0:
        return table, totals
    scrubbed = []
    for text in texts.gather(rows).to_list():
        clean, counts = scrub_text(text)
        scrubbed.append(clean)
        for kind, count in counts.items():
            totals[kind] += count
    return table.with_columns(texts.scatter(rows, pl.Series(scrubbed, dtype=pl.String))), totals
