"""The local stack: moto as AWS, the real Lambda handlers behind a local Invoke endpoint, embedded
PostgreSQL as the target. Resources come from ``template.yaml``; only the environment differs from AWS."""
