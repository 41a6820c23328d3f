"""What server and models share: domain errors (and, as they come, other transport-free types)."""
