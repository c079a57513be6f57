"""The tool-call audit log: writer, recorded form, chain and seals, queries, refusal budget."""
