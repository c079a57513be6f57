"""The profiles server's schema: plain SQL files applied by `shared.db.migrate` with the core's, in version order.

Registered under the `mcp_suite.migrations` entry-point group (pyproject.toml).
"""
