"""CLI sub-commands that print plain text (no Textual)."""
