"""Ingest: new raw files found, checksummed, classified from their headers and copied into the archive."""
