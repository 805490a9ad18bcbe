"""Input access shared by the roles: input references, the data root and URL sources."""
