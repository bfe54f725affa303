"""Augmentation: synthetic training rows from text, behaviour sequences, embeddings and generative models, flagged and never evaluated."""
