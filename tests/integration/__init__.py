"""vLLM (its CPU build) loading a model through this package: the real caller of the API, from
a local directory and from each object store the storage tests run (SeaweedFS, fake-gcs-server,
Azurite). Runs in its own venv with vLLM installed (scripts/test's integration step)."""
