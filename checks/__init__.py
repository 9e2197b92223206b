"""Built-in checks, one module per area: a probe (I/O) and rules (pure)."""
