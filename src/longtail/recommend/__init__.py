"""Candidate fusion with a learned ranker, long-tail re-ranking and similar items."""
