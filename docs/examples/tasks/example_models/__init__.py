"""Your own training code for the task examples (docs/examples/tasks).

Copy this package next to the specs' loader: the local trainer and the workers import it from
there (see training.python_path in docs/training.md for another folder).
"""
