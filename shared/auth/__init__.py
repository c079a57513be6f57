"""Authentication: API tokens and JWTs."""
