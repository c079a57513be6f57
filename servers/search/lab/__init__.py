"""Lab tooling of the search server: benchmark, evaluation, scratch databases."""
