"""Example device models."""
