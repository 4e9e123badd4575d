"""ingest: getting mail in and checking it. Records facts; draws no conclusions about units."""
