"""Built-in fixes, one module per fix: a pure planner and how to verify it."""
