"""(populated by its issue)."""
