"""Entropic optimal transport for hessframe."""
