"""The workflow's steps, one module each: preflight, migrations, staging, canary, verification,
rollback procedure, completion."""
