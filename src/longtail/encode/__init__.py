"""Text encoders that turn item and query text into vectors, with an on-disk cache."""
