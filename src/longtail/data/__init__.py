"""Data model, loaders for the canonical formats, adapters for public datasets."""
