"""The spec models by section; :mod:`airflow_mlops.spec.models` gathers them (import from there)."""
