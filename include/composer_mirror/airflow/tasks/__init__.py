"""The tasks of the mirror's DAGs, one module per DAG; each DAG file only wires them.

Every task body is one step of the library run by :mod:`composer_mirror.airflow.handoffs`: build
the context, receive the input, run the step, hand its result on. Task ids are the function names.
"""
