"""reconcile: roster, attribution, status, reminders, reports and the CLI.

Kept import-light on purpose: ``mailroll status --json`` is measured against ``import reconcile``.
"""
