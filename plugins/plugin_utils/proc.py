# -*- coding: utf-8 -*-
# Copyright: (c) 2026, MLOps platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel state the preflight role reads: /proc/net/tcp, /proc/swaps, /proc/modules."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


_TCP_LISTEN = "0A"


def parse_proc_net_tcp(text):
    """Listening TCP ports from /proc/net/tcp or /proc/net/tcp6 (sorted, unique)."""
    ports = set()
    for line in (text or "").splitlines()[1:]:
        cells = line.split()
        if len(cells) < 4 or ":" not in cells[1]:
            continue
        if cells[3] == _TCP_LISTEN:
            ports.add(int(cells[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def parse_proc_swaps(text):
    """Active swap devices from /proc/swaps: ``[{"device", "size_kb"}]``."""
    result = []
    for line in (text or "").splitlines()[1:]:
        cells = line.split()
        if len(cells) >= 3:
            result.append({"device": cells[0], "size_kb": int(cells[2])})
    return result


def parse_proc_modules(text):
    """Loaded module names from /proc/modules, or built-in ones from modules.builtin
    (``kernel/drivers/.../iscsi_tcp.ko`` lines)."""
    names = set()
    for line in (text or "").splitlines():
        cells = line.split()
        if not cells:
            continue
        word = cells[0]
        if "/" in word or word.endswith((".ko", ".ko.xz", ".ko.zst", ".ko.gz")):
            word = word.rsplit("/", 1)[-1].split(".ko", 1)[0]
        names.add(word.replace("-", "_"))
    return sorted(names)
