"""The suite's MCP servers, one package each (see `servers.registry`)."""
