"""Runnable examples; the test suite imports and exercises each one."""
