"""Renderers: the same diagnosis as a terminal report, JSON, or Markdown; a plan as a script."""
