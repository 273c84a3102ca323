"""Bakeoffs: variants × tasks × attempts, scored by criteria (the contract both sides read)."""
