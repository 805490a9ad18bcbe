"""The reducer role: stages shuffle streams, commits each split once, reports its partition's totals."""
