"""Password hashing with argon2id (argon2-cffi), off the event loop.

Hashing is deliberately slow and memory-hungry (64 MiB per hash with the library's
defaults), so every call runs in a worker thread and at most two run at once: a burst of
sign-ins costs a bounded amount of memory and leaves cores for the call flows.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, concurrency: int = 2) -> None:
        self._hasher = PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True if `password` matches. With no stored hash (unknown user) the same work is
        done against a throwaway hash, so timing does not tell which usernames exist."""
        if stored_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("placeholder for unknown users")
            async with self._slots:
                await asyncio.to_thread(self._check, self._dummy, password)
            return False
        async with self._slots:
            return await asyncio.to_thread(self._check, stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    def _check(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
