"""The stdio transport: a guard that answers every line, and clean shutdown."""
