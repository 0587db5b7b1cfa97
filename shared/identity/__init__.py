"""Who is connecting: OIDC token verification and Airlock-issued keys."""
