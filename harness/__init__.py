"""What the tests, the benchmarks and the scripts share: the real server started as a user
starts it, on free loopback ports, and model folders made from built ones."""
