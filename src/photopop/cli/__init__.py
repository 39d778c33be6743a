"""The `photopop` command. Thin: each module parses arguments and calls the Python API."""
