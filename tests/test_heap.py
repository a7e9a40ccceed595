"""The reaper takes apart what only it holds, in its own thread, and leaves the rest whole."""

from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass, field

from app.heap import Reaper

# The function that was running when each Node was freed: the reaper's loop when it takes a
# value apart node by node, anything else when the whole tree went in one cascade.
FREED_FROM: list[str] = []


@dataclass
class Node:
    name: str
    children: list[Node] = field(default_factory=list)
    pair: tuple[object, ...] = ()

    def __del__(self) -> None:
        FREED_FROM.append(sys._getframe(1).f_code.co_name)


def tree(depth: int, fanout: int) -> Node:
    node = Node(f"d{depth}")
    if depth:
        node.children = [tree(depth - 1, fanout) for _ in range(fanout)]
        node.pair = (node.children[0], {"k": Node("in a dict")})
    return node


def test_a_value_only_the_reaper_holds_is_taken_apart_node_by_node() -> None:
    reaper = Reaper()
    root = tree(depth=4, fanout=4)
    leaf = root.children[3].children[2]
    gone = [weakref.ref(root), weakref.ref(root.children[0]), weakref.ref(leaf)]
    FREED_FROM.clear()
    reaper.release(root)
    del root, leaf

    assert reaper.wait_idle(timeout=10)
    assert [ref() for ref in gone] == [None, None, None]
    # Every node was freed by the reaper's loop, one at a time, not in one cascade.
    nodes = sum(4**depth for depth in range(5))  # and one more in a dict per inner node:
    assert len(FREED_FROM) == nodes + sum(4**depth for depth in range(4))
    assert set(FREED_FROM) == {"_take_apart"}


def test_what_someone_else_still_holds_is_left_whole() -> None:
    reaper = Reaper()
    root = tree(depth=3, fanout=3)
    kept = root.children[1]  # still in use elsewhere, say by a request
    kept_children = list(kept.children)
    reaper.release(root)
    del root

    assert reaper.wait_idle(timeout=10)
    assert kept.name == "d2"
    assert kept.children == kept_children
    assert all(child.children for child in kept.children)
