"""Development tools: what the tests, the demo (`make demo`), the local stack (`make stack`) and the
benchmark (bench/) run the mirror against. Not part of the shipped package (the wheel is include/ only).

- :mod:`devtools.fixture_registry`: a packagist-like Composer registry on loopback, with faults;
- :mod:`devtools.harness`: a moto S3 server, Airflow homes, the composer CLI, the sample application;
- :mod:`devtools.stack`: the production topology as local processes;
- :mod:`devtools.loopback`: a threaded HTTP server on 127.0.0.1, for the servers tests script.

Imports go one way: tests/, bench/ and scripts/ import devtools; devtools imports nothing of theirs.
"""
