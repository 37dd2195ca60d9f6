"""XML layer: the sans-I/O stream parser and helpers over lxml elements."""
