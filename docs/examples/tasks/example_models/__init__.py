"""Your own training code for the task examples (docs/examples/tasks): copy this package into the
dags folder. The local trainer and the Airflow workers import it from there."""
