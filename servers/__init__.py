"""The suite's MCP servers, one package each (see `mcp_suite.registry`)."""
