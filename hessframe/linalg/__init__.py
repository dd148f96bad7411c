"""Algorithms that work on any CurvatureProvider."""
