"""Federated training on Flower (``training.backend: federated``).

- :mod:`.common`: what the server and the clients compute and exchange, as plain functions
  (partitions, pooled feature statistics, score histograms, the app's hash); no Flower import;
- :mod:`.server_app` and :mod:`.client_app`: the Flower ``ServerApp`` and ``ClientApp`` (they
  import ``flwr`` and run only inside a Flower SuperLink / SuperNode);
- :mod:`.flower_cli`: the ``flwr`` command lines the operator and the trigger run (submit, list,
  stop) and the parsing of their output;
- :mod:`.privacy`: the epsilon of DP on client updates, accounted before the run is submitted.

The app itself (``app/pyproject.toml``) names the two components; ``flwr run`` bundles it.
"""
