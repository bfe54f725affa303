"""Live user profiles and their explanations."""
