"""Local storage: the DuckDB file, its schema, and the single writer that owns it."""
