"""What every layer shares: the caller's inputs, as one closed set of types."""
