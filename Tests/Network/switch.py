#!/usr/bin/env python3
"""A network switch for test hosts in Linux network namespaces, in user space.

Each host is a network namespace with a TUN device `tun0` holding its address (made by the test). This
process opens every host's device and forwards each IPv4 packet to the host that owns its destination,
after a delay drawn from `delay ± jitter` milliseconds, dropping a `loss` share of them at random and
every packet between hosts that are cut apart. It stands in for `tc netem`, which kernels built without
CONFIG_NET_SCH_NETEM (this project's CI machines among them) do not have.

Packets between one pair of hosts keep their order (each leaves no earlier than the one before it), as on
a real path: jitter varies the delay, it does not reorder a stream.

Arguments: one `NAMESPACE=ADDRESS` per host. Commands, one a line on standard input, each answered `ok`
(or `error: …`) on standard output:
  delay MS JITTER_MS LOSS_PERCENT   for every packet from now on
  cut A B                           drop everything between hosts A and B (namespace names), both ways
  heal A B                          undo a cut
  isolate A / rejoin A              cut / heal A from every other host
  stats                             packets forwarded, dropped at random, dropped by cuts
"""
import ctypes
import fcntl
import heapq
import os
import random
import selectors
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

libc = ctypes.CDLL(None, use_errno=True)


def open_tun_in(namespace):
    """The TUN device tun0 of `namespace`, opened from inside it (a device is looked up in the namespace
    of the process that attaches to it); this process then returns to its own namespace."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}")
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"tun0", IFF_TUN | IFF_NO_PI))
        return fd
    finally:
        if libc.setns(home, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back home")
        os.close(target)
        os.close(home)


def main():
    hosts = {}  # address (4 bytes) -> (namespace, fd)
    by_name = {}
    for argument in sys.argv[1:]:
        namespace, address = argument.split("=", 1)
        fd = open_tun_in(namespace)
        packed = bytes(int(part) for part in address.split("."))
        hosts[packed] = (namespace, fd)
        by_name[namespace] = packed
    delay, jitter, loss = 0.0, 0.0, 0.0
    cuts = set()  # frozenset({a, b}) of namespace names
    last_due = {}  # (source fd, destination fd) -> when the pair's last packet leaves
    queue = []  # (due, sequence, destination fd, packet)
    sequence = 0
    counts = {"forwarded": 0, "lost": 0, "cut": 0}

    selector = selectors.DefaultSelector()
    for packed, (namespace, fd) in hosts.items():
        selector.register(fd, selectors.EVENT_READ, namespace)
    os.set_blocking(sys.stdin.fileno(), False)
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
    pending_input = b""

    def answer(text):
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def command(line):
        nonlocal delay, jitter, loss
        words = line.split()
        if not words:
            return
        try:
            if words[0] == "delay":
                delay, jitter, loss = float(words[1]) / 1000, float(words[2]) / 1000, float(words[3]) / 100
            elif words[0] in ("cut", "heal"):
                pair = frozenset(words[1:3])
                if not pair <= by_name.keys():
                    raise ValueError(f"unknown host in {words[1:3]}")
                (cuts.add if words[0] == "cut" else cuts.discard)(pair)
            elif words[0] in ("isolate", "rejoin"):
                if words[1] not in by_name:
                    raise ValueError(f"unknown host {words[1]}")
                for other in by_name:
                    if other != words[1]:
                        pair = frozenset((words[1], other))
                        (cuts.add if words[0] == "isolate" else cuts.discard)(pair)
            elif words[0] == "stats":
                answer(" ".join(f"{key}={value}" for key, value in counts.items()))
            else:
                raise ValueError(f"unknown command {words[0]}")
            answer("ok")
        except (IndexError, ValueError) as error:
            answer(f"error: {error}")

    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        for key, _ in selector.select(timeout):
            if key.data is None:
                chunk = os.read(sys.stdin.fileno(), 4096)
                if not chunk:
                    return  # the test is gone: so is the network
                pending_input += chunk
                while b"\n" in pending_input:
                    line, pending_input = pending_input.split(b"\n", 1)
                    command(line.decode())
                continue
            source_name = key.data
            while True:
                try:
                    packet = os.read(key.fd, 65536)
                except BlockingIOError:
                    break
                if len(packet) < 20 or packet[0] >> 4 != 4:
                    continue  # IPv4 only
                destination = hosts.get(packet[16:20])
                if destination is None:
                    continue
                if frozenset((source_name, destination[0])) in cuts:
                    counts["cut"] += 1
                    continue
                if loss and random.random() < loss:
                    counts["lost"] += 1
                    continue
                now = time.monotonic()
                due = now + max(0.0, random.uniform(delay - jitter, delay + jitter))
                pair = (key.fd, destination[1])
                due = max(due, last_due.get(pair, 0.0))
                last_due[pair] = due
                sequence += 1
                heapq.heappush(queue, (due, sequence, destination[1], packet))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, fd, packet = heapq.heappop(queue)
            try:
                os.write(fd, packet)
                counts["forwarded"] += 1
            except (BlockingIOError, OSError):
                counts["lost"] += 1  # the device's queue is full (or it is gone): a drop, as on a wire


if __name__ == "__main__":
    main()
