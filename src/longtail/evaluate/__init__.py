"""Evaluation: full-ranking recommender metrics, search metrics, segments, significance and reports."""
