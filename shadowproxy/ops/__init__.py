"""Operating the proxy: the metrics collector, health, the admin API."""
