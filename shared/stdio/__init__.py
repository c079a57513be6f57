"""The stdio transport: a guard that answers every line, and clean shutdown.

Below the core (it imports nothing of it), so `SuiteServer.run` can serve over it.
"""
