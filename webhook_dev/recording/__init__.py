"""Recordings: the versioned JSON Lines format and redaction (pure), the file's reader and
writer, and the workstation's redaction key."""
