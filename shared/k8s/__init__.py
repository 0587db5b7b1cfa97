"""The Kubernetes API: the policy's cluster targets and rules, request info, body masking (sans-I/O)."""
