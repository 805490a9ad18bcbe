"""The network shell every actor shares: the aiohttp actor base, middleware, the peer client and frame reading."""
