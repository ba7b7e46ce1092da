"""The composition root: the ``stratum`` command, the process roles and the one-process
platform. The only part of ``stratum`` that imports the layers (``ingest``,
``speed_layer``, ``batch_layer``, ``serving``, ``dashboard``); the layering contract in
pyproject.toml (``lint-imports``) enforces it."""
