"""Stage shells: read artifacts, call pipeline/, write artifacts."""
