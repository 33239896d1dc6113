"""Cutting a notebook cell's outputs to a number of bytes, keeping their start (a flood of output must not put
megabytes into the autograded notebook and the feedback HTML)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from nbformat import NotebookNode

# An error is always kept (nbgrader scores a cell with an error 0), cut to at least this many bytes.
ERROR_BYTES_KEPT = 4_000


def cut_marker(cut_bytes: int) -> str:
    return f"[output cut: {cut_bytes} bytes]"


def _size_of(value: object) -> int:
    text = value if isinstance(value, str) else json.dumps(value)
    return len(text.encode("utf-8", "replace"))


def _start_of(text: str, size: int) -> str:
    return text.encode("utf-8", "replace")[:max(size, 0)].decode("utf-8", "ignore")


def size(output: NotebookNode) -> int:
    """Bytes a person would see of one output."""
    kind = output.get("output_type")
    if kind == "stream":
        return _size_of(output.get("text", ""))
    if kind == "error":
        return _size_of(output.get("evalue", "")) + sum(_size_of(line) for line in output.get("traceback", []))
    return sum(_size_of(value) for value in output.get("data", {}).values())


def must_keep(output: NotebookNode) -> bool:
    """Outputs nbgrader scores on: an error or stderr (0 points), an execute_result (partial credit)."""
    kind = output.get("output_type")
    return kind in ("error", "execute_result") or (kind == "stream" and output.get("name") == "stderr")


def shrink(output: NotebookNode, room: int) -> None:
    """Cut one output in place to at most `room` bytes (errors to at least ERROR_BYTES_KEPT), keeping its start."""
    kind = output.get("output_type")
    if kind == "stream":
        output.text = _start_of(output.get("text", ""), room)
    elif kind == "error":
        room = max(room, ERROR_BYTES_KEPT)
        output.evalue = _start_of(output.get("evalue", ""), room // 2)
        left, kept = room - _size_of(output.evalue), []
        for line in output.get("traceback", []):
            if _size_of(line) > left:
                kept.append(_start_of(line, left))
                break
            kept.append(line)
            left -= _size_of(line)
        output.traceback = kept
    else:
        data, left = output.get("data", {}), room
        # text/plain first: it is what a person (and nbgrader's partial credit) reads
        for mime in sorted(data, key=lambda name: name != "text/plain"):
            value = data[mime]
            if _size_of(value) <= left:
                left -= _size_of(value)
            elif mime == "text/plain" and isinstance(value, str):
                data[mime] = _start_of(value, left)
                left = 0
            else:
                del data[mime]


@dataclass
class OutputBudget:
    """Bytes of output a cell and the whole notebook may still keep."""
    per_cell: int
    per_notebook: int
    notebook_used: int = 0
    cell_used: int = 0
    cell_cut: int = 0

    def start_cell(self) -> None:
        self.cell_used = self.cell_cut = 0

    def room(self) -> int:
        return max(0, min(self.per_cell - self.cell_used, self.per_notebook - self.notebook_used))

    def admit(self, output: NotebookNode) -> bool:
        """Cut `output` to the room left and count it; False when nothing of it is worth keeping (drop it)."""
        seen, room = size(output), self.room()
        if seen > room:
            if room == 0 and not must_keep(output):
                self.cell_cut += seen
                return False
            shrink(output, room)
        kept = size(output)
        self.cell_cut += max(seen - kept, 0)
        self.cell_used += kept
        self.notebook_used += kept
        return True
