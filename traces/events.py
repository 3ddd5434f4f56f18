"""Live events of traces. Traces announce nothing yet: the explorer reads current data on every
load and filter change (ingest can be thousands of spans a second, too many to push one by one)."""
