"""Continuous-training guardrails: what may start a retrain, and why a version exists.

A pure domain package (standard library only, no Airflow): the retrain policy that admits or
suppresses the asset events that schedule ``<pipeline>__train`` (:mod:`.policy`), the durable
ledger of its decisions (:mod:`.ledger`), and the reason a retrain carries into the evidence
(:mod:`.reason`).
"""
