"""Modbus TCP face of the simulated sorter: a pymodbus server whose mailbox and coils act like a PLC."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Protocol

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator.simdata import SimData
from pymodbus.simulator.simdevice import SimDevice
from pymodbus.simulator.simutils import DataType

from scanner_drivers.sorter.modbus_layout import (
    ID_REGISTERS,
    MAILBOX_WRITE,
    MAX_SLOTS,
    RESULT_OFFSET,
    SLOT_STRIDE,
    decode_id,
)

MAILBOX = 100
COIL = 16
UNIT = 1
_FC_WRITE_COIL = (5, 15)
_FC_WRITE_REG = (6, 16)
_REGISTERS = MAILBOX + SLOT_STRIDE * (MAX_SLOTS + 1)


class ControllerLogic(Protocol):
    """What the Modbus face needs of the simulated controller (kept here so neither imports the other)."""

    chutes: set[str] | None
    result_delay_s: float

    def drops(self, tracking_id: str) -> bool: ...

    def decide(self, tracking_id: str, chute: str | None) -> tuple[bool, str]: ...

    def note_result(self) -> None: ...


class ModbusSorterServer:
    """Runs the pymodbus server on its own event loop thread; `stop()` shuts it down."""

    def __init__(self, sim: ControllerLogic) -> None:
        self.sim = sim
        self._loop = asyncio.new_event_loop()
        self._server: ModbusTcpServer | None = None
        self._ready = threading.Event()
        self._handled_seq: dict[int, int] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self.port = 0
        self._thread = threading.Thread(target=self._run, name="sorter-sim-modbus", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(5.0) or not self.port:
            raise OSError("simulated Modbus sorter did not start")

    def _device(self) -> SimDevice:
        return SimDevice(
            id=0,
            simdata=(
                [SimData(0, count=256, values=False, datatype=DataType.BITS)],
                [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                [SimData(0, count=_REGISTERS, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._server = ModbusTcpServer(self._device(), address=("127.0.0.1", 0))
            await self._server.serve_forever(background=True)
            self.port = self._server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            self._ready.set()
            await self._server.serving

        try:
            self._loop.run_until_complete(serve())
        finally:
            self._ready.set()

    async def _action(
        self, fc: int, _start: int, address: int, count: int, _regs: list[int], values: Any
    ) -> None:
        # Called before a write lands; the controller reacts once it has landed.
        if not values:
            return
        if fc in _FC_WRITE_REG:
            for slot in range(MAX_SLOTS):
                base = MAILBOX + slot * SLOT_STRIDE
                if address <= base < address + count and values[base - address]:
                    self._loop.call_soon(self._start_mailbox, base)
        elif fc in _FC_WRITE_COIL and address <= COIL < address + count and values[COIL - address]:
            self._loop.call_soon(lambda: asyncio.ensure_future(self._coil()))

    def _start_mailbox(self, base: int) -> None:
        # The loop keeps only weak references to tasks: hold each until it is done.
        task = asyncio.ensure_future(self._mailbox(base))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _get(self, fc: int, address: int, count: int) -> list[Any]:
        assert self._server is not None
        got = await self._server.context.async_getValues(UNIT, fc, address, count)
        if not isinstance(got, list):
            raise OSError(f"simulated Modbus sorter: own read of {address} failed: {got!r}")
        return got

    async def _set(self, fc: int, address: int, values: list[Any]) -> None:
        assert self._server is not None
        await self._server.context.async_setValues(UNIT, fc, address, values)

    async def _mailbox(self, base: int) -> None:
        """One mailbox slot's command; slots are handled concurrently, each by its own task."""
        regs = await self._get(3, base, MAILBOX_WRITE)
        seq, chute = regs[0], regs[1]
        if seq == self._handled_seq.get(base):
            return
        self._handled_seq[base] = seq
        tracking_id = decode_id(regs[2 : 2 + ID_REGISTERS])
        if self.sim.drops(tracking_id):
            return
        if self.sim.chutes is not None and chute and str(chute) not in self.sim.chutes:
            await self._set(16, base + RESULT_OFFSET, [seq, 3, chute])
            return
        diverted, _what = self.sim.decide(tracking_id, str(chute) if chute else None)
        if self.sim.result_delay_s:
            await asyncio.sleep(self.sim.result_delay_s)
        self.sim.note_result()
        await self._set(16, base + RESULT_OFFSET, [seq, 1 if diverted else 2, chute])

    async def _coil(self) -> None:
        if self.sim.drops("coil"):
            return
        diverted, _what = self.sim.decide(f"coil-{COIL}", None)
        if self.sim.result_delay_s:
            await asyncio.sleep(self.sim.result_delay_s)
        self.sim.note_result()
        await self._set(15, COIL, [False, not diverted])

    def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def stop(self) -> None:
        if self._loop.is_running():
            # Results still waiting on their delay are never sent: the controller is switched off.
            self._loop.call_soon_threadsafe(self._cancel_tasks)
        if self._server is not None and self._loop.is_running():
            shutdown = self._server.shutdown()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown, self._loop).result(5.0)
        self._thread.join(5.0)
        if not self._loop.is_running():
            self._loop.close()


def start_modbus_server(sim: ControllerLogic) -> tuple[ModbusSorterServer, str]:
    server = ModbusSorterServer(sim)
    server.start()
    return server, f"modbus://127.0.0.1:{server.port}?unit={UNIT}&register={MAILBOX}"
