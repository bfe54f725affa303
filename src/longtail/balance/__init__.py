"""Imbalance correction: statistics, re-sampling, weighting and negative sampling of training data."""
