"""Privacy: keyed pseudonyms, PII scrubbing, differential privacy for released aggregates, erasure, and the ingest rules."""
