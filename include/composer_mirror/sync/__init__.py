"""The sync: one module per stage of the chain every mirroring DAG runs.

read_upstream -> plan (targets, batches) -> metadata[batch] -> packages[batch] -> publish

- :mod:`.context`: what a task runs on (settings, store, upstream client, endpoints).
- :mod:`.planning`: targets from the selection, the changes feed or an SBOM; batches over shards.
- :mod:`.metadata`: conditional revalidation of upstream p2 files.
- :mod:`.packages`: archives, then each package's record and p2 files (the write rule), then state.
- :mod:`.publish`: the mirrored set, the root, the cursor, the run report.

Nothing here imports Airflow; :mod:`composer_mirror.airflow.tasks.sync` runs these stages as tasks.
"""
