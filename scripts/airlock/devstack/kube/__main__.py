"""``python -m airlock.devstack.kube``: run the local Kubernetes API stand-in."""

from .runner import main

main()
