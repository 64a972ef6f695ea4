"""Tools that measure the library: `bench` (throughput) and `profile` (where a step's time goes).
The command line runs them as `pyro-objects bench` and `pyro-objects profile`."""
