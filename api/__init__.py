"""The settlement service: everything that touches I/O around the pure `adjudication` engine."""
