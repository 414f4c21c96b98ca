"""The engine of ``kbroker bench`` (the command itself is ``kbroker.cli.bench_command``).

- ``options``: the settings and their validation; ``stats``: percentiles, rates, medians (pure)
- ``broker``: the benchmark's own ``kbroker start``; ``memory``: worker RSS from /proc
- ``workloads``: produce / consume / end-to-end latency through the public client
- ``suite``: the commands as functions building a report; ``compare``: against Redis and ZeroMQ
- ``redis_peer``: redis-server + redis-py; ``zmq_baseline``: raw ZeroMQ loopback bandwidth
- ``report``: rich tables and JSON; ``plot``: the PNG of ``--plot`` (matplotlib)

Modules that need optional packages (redis, matplotlib) import them inside functions.
"""
