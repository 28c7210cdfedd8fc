"""pytest-benchmark throughput checks of the metric suite."""
