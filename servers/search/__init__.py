"""Hybrid search: exact BM25 computed inside PostgreSQL plus pgvector embeddings, fused by RRF."""
