"""Quantities in queries and titles: numbers, fractions and units normalised so equal sizes match."""

from __future__ import annotations

import pytest

from longtail.search.units import parse_number, quantities, quantity_matches


@pytest.mark.parametrize(("text", "value"), [("1/2", 0.5), ("3-1/2", 3.5), ("3 1/2", 3.5), ("0.75", 0.75), (".5", 0.5), ("1,500", 1500.0)])
def test_numbers_parse_as_decimals_fractions_and_mixed_numbers(text, value):
    assert parse_number(text) == pytest.approx(value)


def test_half_inch_written_two_ways_is_the_same_quantity():
    (first,) = quantities("1/2 in. copper pipe")
    (second,) = quantities("0.5 inch pipe")
    assert first.dimension == second.dimension == "length"
    assert first.value == pytest.approx(second.value)


def test_units_of_one_dimension_convert_to_its_base_unit():
    (litres,) = quantities("0.5 l")
    (millilitres,) = quantities("500 ml bottle")
    assert litres.value == pytest.approx(millilitres.value)
    assert quantity_matches(quantities("10 ft hose"), quantities("Garden hose 120 in."))[0] == 1.0


def test_a_different_size_of_the_same_dimension_is_a_conflict_not_a_match():
    matched, conflicting = quantity_matches(quantities("3/4 in pipe"), quantities("1/2 in. pipe, 10 ft."))
    assert (matched, conflicting) == (0.0, 1.0)


def test_a_bare_query_number_matches_the_number_written_with_a_unit():
    matched, _ = quantity_matches(quantities("2x4 stud"), quantities("2 in. x 4 in. x 8 ft. stud"))
    assert matched == 1.0


def test_text_without_numbers_has_no_quantities():
    assert quantities("cordless drill") == []
    assert quantity_matches([], quantities("18V drill")) == (0.0, 0.0)
