"""PostgreSQL: the sans-I/O wire codec (``wire``), SQL classification and guardrails (``sql``), result
masking on the wire (``masking``) and the session relay that ties them together (``relay``)."""
