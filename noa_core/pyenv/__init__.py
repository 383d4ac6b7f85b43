"""A dropped Python project's own environment: what it declares, resolved, fetched and built without running its code."""
