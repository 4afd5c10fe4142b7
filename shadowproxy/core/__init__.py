"""The bottom layer: the JSON-RPC codec, the interceptor chain and its verdicts, errors, SSE framing, counters,
and the small tools everything above uses (tasks, timers, logs, token buckets). It imports nothing of the proxy."""
