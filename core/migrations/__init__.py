"""Step 2: lint migrations for backward compatibility and run them, staging first."""

from core.migrations.lint import Finding, lint_file, lint_files, lint_sql
from core.migrations.run import run_migration

__all__ = ["Finding", "lint_file", "lint_files", "lint_sql", "run_migration"]
