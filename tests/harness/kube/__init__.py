"""A Kubernetes API stand-in for CI: `from tests.harness.kube import standin` (see standin.py)."""
