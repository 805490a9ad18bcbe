"""Word count: its engine (a C kernel behind a Python fallback), COLUMNS codec, packing and result encoders."""

