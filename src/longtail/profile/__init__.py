"""User profiles and privacy: pseudonymisation, PII scrubbing, differential privacy, erasure."""
