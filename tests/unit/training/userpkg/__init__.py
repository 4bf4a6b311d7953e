"""A user's own package for the training tests: fit entrypoints, a torch module, an estimator.

The tests put ``tests/unit/training`` on ``sys.path`` and import it as ``userpkg``, as a user's
package is imported where the trainer runs.
"""
