"""Resilience: circuit breaker, retries, rate limits, deadlines."""
