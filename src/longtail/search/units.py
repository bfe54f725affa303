"""Quantities in text ("1/2 in.", "0.5 inch", "3-1/2 ft", "40 gal"): numbers parsed, units mapped to one base unit per dimension."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A general unit grammar (SI and US customary), not a list for any one catalogue: alias -> (dimension, factor to base).
_UNITS: dict[str, tuple[str, float]] = {}
for _aliases, _dimension, _factor in (
    (("mm", "millimeter", "millimeters", "millimetre", "millimetres"), "length", 0.001),
    (("cm", "centimeter", "centimeters", "centimetre", "centimetres"), "length", 0.01),
    (("m", "meter", "meters", "metre", "metres"), "length", 1.0),
    (("km", "kilometer", "kilometers"), "length", 1000.0),
    (("in", "inch", "inches", '"', "''", "”"), "length", 0.0254),
    (("ft", "foot", "feet", "'", "’"), "length", 0.3048),
    (("yd", "yard", "yards"), "length", 0.9144),
    (("mi", "mile", "miles"), "length", 1609.344),
    (("sq ft", "sq. ft", "square foot", "square feet", "sqft"), "area", 0.092903),
    (("sq in", "sq. in", "square inch", "square inches"), "area", 0.00064516),
    (("cu ft", "cu. ft", "cubic foot", "cubic feet"), "volume", 28.3168),
    (("ml", "milliliter", "milliliters", "millilitre"), "volume", 0.001),
    (("l", "liter", "liters", "litre", "litres"), "volume", 1.0),
    (("gal", "gallon", "gallons"), "volume", 3.78541),
    (("qt", "quart", "quarts"), "volume", 0.946353),
    (("pt", "pint", "pints"), "volume", 0.473176),
    (("fl oz", "fl. oz", "fluid ounce", "fluid ounces"), "volume", 0.0295735),
    (("mg", "milligram", "milligrams"), "mass", 0.001),
    (("g", "gram", "grams"), "mass", 1.0),
    (("kg", "kilogram", "kilograms"), "mass", 1000.0),
    (("oz", "ounce", "ounces"), "mass", 28.3495),
    (("lb", "lbs", "pound", "pounds"), "mass", 453.592),
    (("w", "watt", "watts"), "power", 1.0),
    (("kw", "kilowatt", "kilowatts"), "power", 1000.0),
    (("hp", "horsepower"), "power", 745.7),
    (("v", "volt", "volts"), "voltage", 1.0),
    (("a", "amp", "amps", "ampere", "amperes"), "current", 1.0),
    (("mah",), "charge", 1.0),
    (("ah",), "charge", 1000.0),
    (("btu", "btus"), "energy", 1.0),
    (("gpm",), "flow", 1.0),
    (("psi",), "pressure", 1.0),
    (("rpm",), "speed", 1.0),
    (("cfm",), "airflow", 1.0),
    (("gb", "gigabyte", "gigabytes"), "data", 1.0),
    (("tb", "terabyte", "terabytes"), "data", 1000.0),
    (("hz", "hertz"), "frequency", 1.0),
    (("mhz",), "frequency", 1e6),
    (("ghz",), "frequency", 1e9),
    (("k", "kelvin"), "colour-temperature", 1.0),
    (("lm", "lumen", "lumens"), "light", 1.0),
    (("pc", "pcs", "pk", "pack", "piece", "pieces", "count", "ct"), "count", 1.0),
    (("gauge", "ga"), "gauge", 1.0),
    (("%", "percent"), "percent", 1.0),
):
    for _alias in _aliases:
        _UNITS[_alias] = (_dimension, _factor)

# Longest aliases first so "sq ft" wins over "ft" and "fl oz" over "oz".
_UNIT_PATTERN = "|".join(re.escape(alias) for alias in sorted(_UNITS, key=len, reverse=True))
_NUMBER = r"(?:\d+(?:[ -]\d+/\d+)|\d+/\d+|\d*\.\d+|\d+(?:,\d{3})*)"
_QUANTITY = re.compile(rf"(?<![a-wyz\d.])({_NUMBER})\s*(?:({_UNIT_PATTERN})(?![a-z]))?\.?", re.IGNORECASE)
_RELATIVE_TOLERANCE = 0.02


@dataclass(frozen=True)
class Quantity:
    """A number in a text as written, its unit's dimension ("" when bare) and its value in that dimension's base unit."""

    number: float
    value: float
    dimension: str


def parse_number(text: str) -> float:
    """A decimal, a fraction ("1/2") or a mixed number ("3-1/2", "3 1/2") as a float."""
    text = text.replace(",", "")
    whole, _, fraction = text.replace("-", " ").rpartition(" ") if "/" in text else ("", "", text)
    if "/" in fraction:
        numerator, denominator = fraction.split("/")
        value = float(numerator) / float(denominator) if float(denominator) else 0.0
    else:
        value = float(fraction)
    return value + (float(whole) if whole else 0.0)


def quantities(text: str) -> list[Quantity]:
    """Every number in a text with its unit normalised, so "1/2 in." and "0.5 inch" give the same quantity."""
    found = []
    for match in _QUANTITY.finditer(text.lower()):
        number, unit = match.group(1), match.group(2)
        try:
            value = parse_number(number)
        except ValueError:
            continue
        if unit is None:
            found.append(Quantity(value, value, ""))
        else:
            dimension, factor = _UNITS[unit.lower()]
            found.append(Quantity(value, value * factor, dimension))
    return found


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= _RELATIVE_TOLERANCE * max(abs(a), abs(b), 1e-9)


def quantity_matches(query: list[Quantity], title: list[Quantity]) -> tuple[float, float]:
    """(share of the query's quantities the title states, share of the query's dimensions the title states with another value)."""
    if not query:
        return 0.0, 0.0
    matched, conflicting = 0, 0
    for wanted in query:
        if wanted.dimension:
            same_dimension = [q.value for q in title if q.dimension == wanted.dimension]
            if any(_same(wanted.value, value) for value in same_dimension):
                matched += 1
            elif same_dimension:
                conflicting += 1
        elif any(_same(wanted.number, q.number) for q in title):
            # A bare query number ("2 x 4") matches the same number written anywhere in the title, with or without a unit.
            matched += 1
    return matched / len(query), conflicting / len(query)
