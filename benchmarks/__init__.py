"""One script per figure in docs/*.md, each run from the repository root as ``python -m benchmarks.NAME``
(results in benchmarks/results/, shared helpers in benchmarks._common)."""
