"""Competing-risks time to churn: discrete-time cause-specific hazards (docs/survival.md)."""
