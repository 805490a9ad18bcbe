"""The mapper role: maps assigned splits and streams partitioned partial values to the reducers."""
