"""The operator commands beside the stream: ``check``, ``status``, ``offsets``."""
