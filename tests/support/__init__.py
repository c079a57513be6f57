"""Helpers the tests share (one of each)."""
