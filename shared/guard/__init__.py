"""Protocol-neutral judging: the actions a rule can take and how a request's effects combine into one
verdict. Each protocol (``shared/pg/sql``, later SSH and Kubernetes) says what its effects are and how
its rules match them; the combination is the same everywhere."""

from shared.guard.verdict import Action

__all__ = ["Action"]
