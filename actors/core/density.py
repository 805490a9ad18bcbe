"""Frame density: how many lists and maps a CBOR frame holds, bounded before it is decoded.

Decoding costs per item, and items are at most bytes, so MR_FRAME_CAP bounds a frame's decode time for scalars.
Lists and maps cost ten times more each (cbor2 builds a container, the wire check recurses into it: measured below),
so a frame of empty lists under the cap could still hold the event loop for seconds. A reducer counts them first:
cheaply from the bytes when possible, else by walking the item heads in slices between which the loop runs.
"""

from __future__ import annotations

from collections.abc import Generator

# A container's head byte is 0x80-0xBF (CBOR major types 4 and 5), so the bytes in that range bound the number of
# lists and maps from above. Counted at C speed; UTF-8 continuation bytes and integer payloads land there too, so a
# frame past the bound is walked to get the true count.
_CONTAINER_HEADS = bytes(range(0x80, 0xC0))
_WIDTHS = {24: 1, 25: 2, 26: 4, 27: 8}
SLICE = 4096  # item heads walked between two yields to the event loop (a few ms of Python)


def container_bound(body: bytes) -> int:
    """An upper bound on the lists and maps ``body`` holds, without parsing it."""
    return len(body) - len(body.translate(None, _CONTAINER_HEADS))


def count_containers(body: bytes, limit: int) -> Generator[None, None, int]:
    """Walk the item heads of ``body``; return how many are lists or maps, stopping once past ``limit``.

    A generator that yields every :data:`SLICE` items so its caller can let the event loop run. Strings are skipped
    by their length, never read. Whatever the decoder would refuse (indefinite lengths, tags, reserved values, a
    truncated item) ends the walk with the count so far: the decoder then refuses it in constant time.
    """
    containers, position, pending, items, end = 0, 0, 1, 0, len(body)
    while pending and position < end:
        head = body[position]
        major, info = head >> 5, head & 0x1F
        position += 1
        if info < 24:
            argument = info
        else:
            width = _WIDTHS.get(info)
            if width is None or major == 6:
                return containers  # indefinite, reserved or a tag: refused by the decoder at once
            argument = int.from_bytes(body[position:position + width], "big")
            position += width
        pending -= 1
        if major == 2 or major == 3:
            position += argument
        elif major == 4 or major == 5:
            containers += 1
            if containers > limit:
                return containers
            pending += argument * (major - 3)  # a list's items, a map's keys and values
        elif major == 6:
            return containers
        items += 1
        if items % SLICE == 0:
            yield
    return containers

def container_limit(frame_keys: int) -> int:
    """Most lists and maps a frame may hold: two per key (a value such as a list of names, with room to spare)
    and the message's own. Every built-in job's frames hold at most one per key."""
    return 2 * frame_keys + 16


def too_dense(body: bytes, frame_keys: int) -> bool:
    """Whether a frame holds more lists and maps than a reducer takes (for a mapper cutting its frames: no yields)."""
    limit = container_limit(frame_keys)
    if container_bound(body) <= limit:
        return False
    walk = count_containers(body, limit)
    while True:
        try:
            next(walk)
        except StopIteration as done:
            return bool(done.value > limit)
