"""The Airflow layer: the only part of the library that imports Airflow.

Every other module runs on plain objects (settings, a store, an upstream client); the modules here
turn Airflow's Variables, Connections and task context into those objects, pass values between
tasks, send alerts, and define the tasks each DAG file wires (``tasks/``, one module per DAG).
Inside this package ``import airflow`` is still Airflow itself: imports are absolute.

Nothing here reads a Variable, a Connection or S3 at import time: DAG files import these modules
while they are parsed, which happens every few seconds in the dag processor.
"""
