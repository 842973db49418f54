"""The invite redirect's random ids: OS randomness read a few kilobytes at a time, each
byte handed out once, never the same in two threads or in a forked child."""

from __future__ import annotations

import os
import re
import threading

from apps.common import codes
from apps.common.codes import random_bytes, random_urlsafe, random_uuid


def test_ids_have_the_asked_size_and_never_repeat_across_refills():
    # Several pools' worth, in sizes that do not divide the pool: every refill is crossed.
    taken = [random_bytes(n) for n in (16, 7, 33) * (3 * codes.POOL_BYTES // 56 + 1)]
    assert [len(b) for b in taken[:3]] == [16, 7, 33]
    assert len(random_bytes(codes.POOL_BYTES + 1)) == codes.POOL_BYTES + 1  # past the pool
    sixteen = [b for b in taken if len(b) == 16]
    assert len(set(sixteen)) == len(sixteen)


def test_urlsafe_ids_and_uuids_look_like_the_standard_ones():
    token = random_urlsafe(16)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", token)  # as secrets.token_urlsafe(16)
    uuid = random_uuid()
    assert uuid.version == 4
    assert len({random_uuid() for _ in range(1000)}) == 1000


def test_threads_never_share_bytes():
    found: list[list[bytes]] = []
    start = threading.Barrier(8)

    def take() -> None:
        start.wait()
        found.append([random_bytes(16) for _ in range(600)])

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [b for chunk in found for b in chunk]
    assert len(every) == 4800
    assert len(set(every)) == 4800


def test_a_forked_child_does_not_hand_out_its_parents_bytes():
    random_bytes(16)  # the pool is filled: the child inherits it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write, random_bytes(16))
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 16)
    os.close(read)
    assert len(child) == 16
    assert child != random_bytes(16)
