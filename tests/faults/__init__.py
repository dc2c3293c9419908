"""The fault-injection and security suite: never publish a broken index, never lose a mirrored
version, never fetch where the mirror must not.

- test_upstream_faults: transient upstream faults through the DAG, permanent ones isolated, a rewritten
  tag kept, a deleted package kept, failures retried by the next run.
- test_s3_faults: a throttling or refusing S3 behind ``s3_proxy.S3FaultProxy``.
- test_worker_crash: ``airflow dags test`` SIGKILLed at six points of the write order (between archive
  uploads, after a record, after a p2 file, during shard writes, before the root, before the cursor).
- test_concurrent_publishers: a sync and an SBOM run racing on one package, the root and the catalog;
  threads on one object.
- test_fetch_policy: forbidden destinations, credentials, hostile metadata; test_names_and_keys; test_limits.

Every scenario ends with ``tests.mirror_checks.check_repository``: the published root only ever points at
p2 files and archives that exist, with the bytes their shasum promises.
"""
