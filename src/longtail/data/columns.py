"""Bookkeeping columns and markers every training table shares, from balancing through the models."""

# rows a balancing or augmentation component made up (never evaluated)
SYNTHETIC = "synthetic"
# per-row loss weight
WEIGHT = "weight"
# a position of a behaviour sequence whose item an augmentation hid: models read it as padding and never predict it
MASKED = -1
