"""Performance layer: latency and throughput measured per run, judged against the history.

Each module stands alone and imports its heavy dependencies (numpy, scipy) itself, so
importing this package costs nothing; ``regression`` judges one run against a baseline,
``changepoint`` finds where a history of runs shifted.
"""
