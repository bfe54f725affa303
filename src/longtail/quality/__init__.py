"""Data-quality audit, cleaning rules, quarantine and the quality report."""
