"""The benchmark harness behind ``scripts/bench``: pgbench through several routes to one PostgreSQL.

Theory of operation. A *route* is a way to reach the target (libpq keywords without a password, plus
the environment that carries the password); a *workload* is a pgbench invocation (arguments, maybe a
custom script). One run measures every workload on every route, back to back, so the numbers share a
machine, a data set and a moment, and reports each route's throughput as a ratio to the baselines
(``direct`` and ``pgbouncer``). New variants of Airlock (recording on/off, masking...) are new routes.

Modules: ``model`` (routes, workloads, results, pgbench output), ``pgbench`` (finding and running it),
``target`` (the stack to measure: started or reused, and the target prepared for pgbench),
``pgbouncer`` (a session-mode pgbouncer with client TLS), ``catalog`` (the standard routes and
workloads), ``report`` (the table, the JSON file, the machine).
"""
