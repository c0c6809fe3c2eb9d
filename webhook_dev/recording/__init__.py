"""Recordings: the versioned JSON Lines format, redaction, and the file's reader and writer."""
