"""Stratum layer."""
