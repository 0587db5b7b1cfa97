"""Deployment checks: what ``sam build`` produces, and the proxy image's file tree."""
