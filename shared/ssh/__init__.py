"""SSH: the policy's SSH targets and rules, command parsing and the channel session layer (sans-I/O)."""
