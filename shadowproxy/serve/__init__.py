"""Running the proxy: the aiohttp application that puts the fronts and operations together, the runner and
its start banner."""
