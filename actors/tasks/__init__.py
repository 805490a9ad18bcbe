"""Task processes: user code runs in supervised worker processes, never on an actor's event loop."""
