"""The command line and the benchmarks: on top of the core and the servers."""
