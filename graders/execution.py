"""nbgrader's Execute, made safe against hostile notebooks.

- A cell over its time limit is interrupted (nbgrader does that). If the kernel ignores the interrupt (code that
  catches KeyboardInterrupt and loops on), it is restarted, the cells that ran before are run again silently to
  rebuild the state later exercises need, and grading goes on: the stuck cell costs only its own exercise.
- Output is kept up to a number of bytes per cell and per notebook, as it arrives; the rest is dropped and a
  visible "[output cut: N bytes]" line says so.
"""

from __future__ import annotations

from queue import Empty
from time import monotonic
from typing import Any

from jupyter_core.utils import ensure_async, run_sync
from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.preprocessors import Execute
from traitlets import Float, Integer

from graders.outputcap import OutputBudget, cut_marker

IGNORED_INTERRUPT = ("the code ignored the interrupt (does it catch BaseException or KeyboardInterrupt?), so the "
                     "kernel was restarted and the cells before this one were run again")


class GuardedExecute(Execute):

    max_cell_output_bytes = Integer(100_000, help="bytes of output kept per cell").tag(config=True)
    max_notebook_output_bytes = Integer(1_000_000, help="bytes of output kept per notebook").tag(config=True)
    interrupt_grace_seconds = Float(
        5.0, help="how long an interrupted kernel has to become idle before it is restarted").tag(config=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._budget = OutputBudget(self.max_cell_output_bytes, self.max_notebook_output_bytes)
        self._timed_out = False
        self._completed_sources: list[str] = []  # code cells run to the end, replayed after a restart

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> tuple[NotebookNode, Any]:
        self._budget = OutputBudget(self.max_cell_output_bytes, self.max_notebook_output_bytes)
        self._completed_sources = []
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell: NotebookNode, resources: Any, index: int) -> tuple[NotebookNode, Any]:
        self._budget.start_cell()
        self._timed_out = False
        cell, resources = super().preprocess_cell(cell, resources, index)
        if self._timed_out:
            if self._recover():
                for output in cell.outputs:
                    if output.output_type == "error" and output.ename == "CellTimeoutError":
                        output.evalue = IGNORED_INTERRUPT
        elif cell.cell_type == "code" and cell.source.strip():
            self._completed_sources.append(cell.source)
        return cell, resources

    # --- time limit --------------------------------------------------------------------------------------------

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None) -> None | dict[str, Any]:
        self._timed_out = True
        return await super()._async_handle_timeout(timeout, cell)

    async def _async_reply_within(self, msg_id: str, seconds: float) -> bool:
        """Whether the kernel answers this shell request in time (earlier cells' late replies are skipped)."""
        assert self.kc is not None
        deadline = monotonic() + seconds
        while (left := deadline - monotonic()) > 0:
            try:
                reply = await ensure_async(self.kc.shell_channel.get_msg(timeout=left))
            except Empty:
                return False
            if reply["parent_header"].get("msg_id") == msg_id:
                return True
        return False

    async def _async_answers(self, seconds: float) -> bool:
        assert self.kc is not None
        return await self._async_reply_within(self.kc.execute("pass", silent=True, store_history=False), seconds)

    async def _async_restart(self) -> None:
        assert self.km is not None and self.kc is not None
        await ensure_async(self.km.restart_kernel(now=True))
        await ensure_async(self.kc.stop_channels())
        self.kc = self.km.client()
        await ensure_async(self.kc.start_channels())
        await ensure_async(self.kc.wait_for_ready(timeout=self.startup_timeout))
        self.kc.allow_stdin = False

    async def _async_replay(self) -> bool:
        """Run the completed cells again, output unseen; False when one of them did not finish in time."""
        assert self.kc is not None
        limit = self._get_timeout(None) or 0
        for source in self._completed_sources:
            msg_id = self.kc.execute(source, silent=True, store_history=False, stop_on_error=False)
            if limit and not await self._async_reply_within(msg_id, limit):
                return False
        return True

    async def _async_recover(self) -> bool:
        """After a time-out: True when the kernel ignored the interrupt and had to be restarted."""
        if await self._async_answers(self.interrupt_grace_seconds):
            return False
        self.log.warning("the kernel ignored the interrupt: restarting it and re-running the cells before")
        await self._async_restart()
        if not await self._async_replay():
            self.log.warning("a re-run cell did not finish in time: going on in a fresh kernel")
            self._completed_sources = []
            await self._async_restart()
        return True

    _recover = run_sync(_async_recover)

    # --- output limit ------------------------------------------------------------------------------------------

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None,
               cell_index: int) -> NotebookNode | None:
        out = super().output(outs, msg, display_id, cell_index)
        if out is None or self._budget.admit(out) or display_id:
            return out
        if outs and outs[-1] is out:
            outs.pop()
        return None

    def on_cell_executed(self, **kwargs: Any) -> None:
        super().on_cell_executed(**kwargs)
        if self._budget.cell_cut:
            kwargs["cell"].outputs.append(new_output("display_data",
                                                     data={"text/plain": cut_marker(self._budget.cell_cut)}))
