"""Evaluation: ranking metrics, segments and significance."""
