"""The source stage: the binlog (and the few SQL reads the stream needs) → row changes."""
