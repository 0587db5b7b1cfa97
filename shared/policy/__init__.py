"""The versioned policy file: model and loader."""

from shared.policy.loader import PolicyError, parse_policy
from shared.policy.model import Binding, IdentitySpec, OidcMatch, Policy, TargetSpec

__all__ = ["Binding", "IdentitySpec", "OidcMatch", "Policy", "PolicyError", "TargetSpec", "parse_policy"]
