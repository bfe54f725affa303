"""Recommenders behind one interface: popularity, collaborative, content and sequential models."""
