"""The run: the ordered steps of `clinepipe run` (ingest, masters, lights, finishing), the lock, Dask."""
