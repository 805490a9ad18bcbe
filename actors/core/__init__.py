"""The pure core: settings, errors, logs, the wire codec, messages, partitioning and splits; no role or network code."""
