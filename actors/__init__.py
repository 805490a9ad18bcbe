"""mapreduce-actors: MapReduce on asyncio actors (master, mappers, reducers) over aiohttp."""

__version__ = "0.1.0"
