"""Engine adapters, one module each, found through the ``bragi.backends`` entry point."""
