"""Augmentation: text, sequence, noise and generative synthesis that enlarge scarce training data with synthetic rows, flagged, never evaluated."""
