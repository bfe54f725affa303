"""Longtail: e-commerce search and recommendation that serves the long tail."""

__version__ = "0.1.0"
