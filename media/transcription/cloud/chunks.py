"""Audio in the sizes it arrives (20 ms frames) → chunks of one size for a service. Pure."""

from __future__ import annotations


class AudioChunker:
    def __init__(self, chunk_bytes: int) -> None:
        if chunk_bytes <= 0:
            raise ValueError("chunk_bytes must be positive")
        self._size = chunk_bytes
        self._buffer = bytearray()

    def add(self, payload: bytes) -> list[bytes]:
        """Every whole chunk the buffered audio now fills, in order."""
        self._buffer += payload
        size = self._size
        whole = len(self._buffer) // size * size
        if not whole:
            return []
        data = bytes(self._buffer[:whole])
        del self._buffer[:whole]
        return [data[i : i + size] for i in range(0, whole, size)]

    def rest(self) -> bytes:
        """What is buffered short of a chunk (the end of the audio), emptied."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest
