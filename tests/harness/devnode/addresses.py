"""Loopback addresses handed out to pods and Services, unique across the machine.

Linux routes all of 127.0.0.0/8 to the loopback interface, so every pod can
have an address of its own (127.0.x.y) and every Service one more (127.1.x.y),
and two servers on the same port never collide. Several development nodes
(other test sessions) may run on one machine at once, so an address is
claimed by an exclusive ``flock`` on a file named after it: the kernel drops
the claim when its holder exits, however it exits, so a crashed agent never
leaks addresses.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import threading
from pathlib import Path

LOCK_ROOT = Path(os.environ.get("MODELSHIP_DEVNODE_LOCKS", "/tmp/modelship-devnode"))


class AddressesExhausted(RuntimeError):
    """Every address of a pool is claimed."""


class AddressPool:
    """Claims and frees addresses of one /16 inside 127.0.0.0/8."""

    def __init__(self, network: str, *, first_host: int = 256, lock_root: Path = LOCK_ROOT):
        self.network = ipaddress.ip_network(network)
        if not self.network.subnet_of(ipaddress.ip_network("127.0.0.0/8")):
            raise ValueError(f"{network} is not a loopback network")
        self.first_host = first_host
        self.lock_dir = lock_root / "addresses"
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def claim(self) -> str:
        """A free address, held until :meth:`free` or until this process ends."""
        with self._lock:
            size = self.network.num_addresses
            for offset in range(self.first_host, size - 1):
                address = str(self.network.network_address + offset)
                if address.endswith(".0") or address.endswith(".255") or address in self._held:
                    continue
                fd = os.open(self.lock_dir / address, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno in (errno.EAGAIN, errno.EACCES):
                        continue
                    raise
                self._held[address] = fd
                return address
        raise AddressesExhausted(f"every address of {self.network} is in use")

    def free(self, address: str) -> None:
        """Give ``address`` back; freeing one not held is a no-op."""
        with self._lock:
            fd = self._held.pop(address, None)
        if fd is not None:
            os.close(fd)

    def free_all(self) -> None:
        for address in list(self._held):
            self.free(address)

    @property
    def held(self) -> list[str]:
        return sorted(self._held)
