"""Many real SIP phones at once: PhoneLabs in worker processes, driven from the test's process.

The pjsua2 wheel we use is built with small fixed limits per process: 4 calls, 8 accounts, 8
transports (and 32 players and recorders). One `PhoneLab` therefore holds at most 4 call legs at a
time, and a process may have only one. A test that needs more (e.g. twenty calls in every state at
once) runs several labs, one per worker process, through this module. Each worker is
`python -m tests.support.phone_pool <log dir>`: a `PhoneLab` that carries out requests read as JSON
lines on stdin and answers on stdout, one at a time. The test picks the worker of each phone, so
it decides which legs share a process and keeps each worker within its 4 calls.

`RemotePhone` and `RemoteCall` mirror the `Phone` and `Call` methods the tests use; waits run in
the worker with the same timeouts and raise the same `PhoneTimeout` / `PhoneError`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from tests.support.sip_phone import DEFAULT_TIMEOUT, PhoneError, PhoneTimeout

REPO = Path(__file__).resolve().parents[2]
# Beyond a request's own timeout, how long a worker may take to answer before it is deemed stuck.
SLACK_S = 30.0


class PhoneWorker:
    """One worker process and its lab."""

    def __init__(self, log_dir: Path, name: str) -> None:
        self.name = name
        self.log_dir = log_dir / name
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._err = open(self.log_dir / "worker.err", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.phone_pool", str(self.log_dir)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            preexec_fn=_die_with_parent,
        )
        self._seq = 0

    def request(self, op: str, wait_s: float = DEFAULT_TIMEOUT, /, **args: Any) -> Any:
        """Carry out one request in the worker; `wait_s` is how long it may block there."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._seq += 1
        line = json.dumps({"seq": self._seq, "op": op, "args": args}) + "\n"
        try:
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise PhoneError(f"phone worker {self.name} is gone ({self._tail()})") from None
        ready, _, _ = select.select([self.proc.stdout], [], [], wait_s + SLACK_S)
        if not ready:
            raise PhoneError(f"phone worker {self.name} did not answer {op} within {wait_s + SLACK_S:.0f} s")
        answer = self.proc.stdout.readline()
        if not answer:
            raise PhoneError(f"phone worker {self.name} died during {op} ({self._tail()})")
        reply = json.loads(answer)
        if "error" in reply:
            kind, message = reply["error"]["type"], reply["error"]["message"]
            raise (PhoneTimeout if kind == "PhoneTimeout" else PhoneError)(f"[{self.name}] {message}")
        return reply["result"]

    def _tail(self) -> str:
        try:
            return (self.log_dir / "worker.err").read_text(errors="replace")[-2000:]
        except OSError:
            return "no stderr"

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(PhoneError, OSError, ValueError):
                self.request("close", 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._err.close()


class RemotePhone:
    def __init__(self, worker: PhoneWorker, info: dict[str, Any]) -> None:
        self.worker = worker
        self.handle = int(info["phone"])
        self.address = str(info["address"])
        self.port = int(info["port"])
        self.user = str(info["user"])
        self.bind_ip = str(info["bind_ip"])

    def __repr__(self) -> str:
        return f"<RemotePhone {self.user}@{self.address} in {self.worker.name}>"

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{self.address}"

    def call(
        self,
        uri: str,
        *,
        play: Path | str | None = None,
        record: Path | str | None = None,
        loop: bool = False,
        headers: Mapping[str, str] | None = None,
        from_user: str | None = None,
    ) -> RemoteCall:
        info = self.worker.request(
            "call",
            phone=self.handle,
            uri=uri,
            play=_path(play),
            record=_path(record),
            loop=loop,
            headers=dict(headers or {}),
            from_user=from_user,
        )
        return RemoteCall(self, info)

    def wait_incoming(self, timeout: float = DEFAULT_TIMEOUT, to_user: str | None = None) -> RemoteCall:
        info = self.worker.request(
            "wait_incoming", timeout, phone=self.handle, timeout=timeout, to_user=to_user
        )
        return RemoteCall(self, info)

    def wait_registered(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.worker.request("phone", timeout, phone=self.handle, method="wait_registered", timeout=timeout)

    def register(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.worker.request("phone", timeout, phone=self.handle, method="register", timeout=timeout)


class RemoteCall:
    """A call leg in a worker. What the INVITE said is copied once; the state is asked each time."""

    def __init__(self, phone: RemotePhone, info: dict[str, Any]) -> None:
        self.phone = phone
        self.worker = phone.worker
        self.handle = int(info["call"])
        self.direction = str(info["direction"])
        self.invite = str(info["invite"])
        self.headers: dict[str, list[str]] = info["headers"]
        self.from_user = str(info["from_user"])
        self.from_uri = str(info["from_uri"])
        self.to_user = str(info["to_user"])

    def __repr__(self) -> str:
        return f"<RemoteCall {self.direction} {self.handle} on {self.phone!r}>"

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def _do(self, method: str, wait_s: float = DEFAULT_TIMEOUT, /, **args: Any) -> Any:
        return self.worker.request("call_method", wait_s, call=self.handle, method=method, args=args)

    # -- state --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        result = self.worker.request("status", call=self.handle)
        assert isinstance(result, dict)
        return result

    @property
    def is_confirmed(self) -> bool:
        return bool(self.status()["confirmed"])

    @property
    def is_disconnected(self) -> bool:
        return bool(self.status()["disconnected"])

    # -- actions ------------------------------------------------------------------------------

    def answer(
        self,
        code: int = 200,
        *,
        play: Path | str | None = None,
        record: Path | str | None = None,
        loop: bool = False,
    ) -> None:
        self._do("answer", code=code, play=_path(play), record=_path(record), loop=loop)

    def hangup(self, code: int | None = None) -> None:
        self._do("hangup", code=code)

    def reject(self, code: int = 486) -> None:
        self._do("reject", code=code)

    def send_dtmf(self, digits: str, duration_ms: int = 160) -> None:
        self._do("send_dtmf", digits=digits, duration_ms=duration_ms)

    def play(self, path: Path | str, *, loop: bool = False) -> None:
        self._do("play", path=str(path), loop=loop)

    def stop_playing(self) -> None:
        self._do("stop_playing")

    def record(self, path: Path | str) -> None:
        self._do("record", path=str(path))

    def recording(self) -> Path:
        return Path(self._do("recording"))

    def rx_audio_seconds(self) -> float:
        return float(self._do("rx_audio_seconds"))

    # -- waits --------------------------------------------------------------------------------

    def wait_confirmed(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._do("wait_confirmed", timeout, timeout=timeout)

    def wait_disconnected(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._do("wait_disconnected", timeout, timeout=timeout)

    def wait_media(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._do("wait_media", timeout, timeout=timeout)

    def wait_rx_audio(self, seconds: float, timeout: float = DEFAULT_TIMEOUT) -> float:
        return float(self._do("wait_rx_audio", timeout, seconds=seconds, timeout=timeout))

    def wait_dtmf(self, count: int = 1, timeout: float = DEFAULT_TIMEOUT) -> str:
        return str(self._do("wait_dtmf", timeout, count=count, timeout=timeout))


class PhonePool:
    """Worker processes, each with its own PhoneLab (4 calls, 8 phones); started on first use."""

    def __init__(self, log_dir: Path, workers: int) -> None:
        self.log_dir = log_dir
        self._workers: dict[int, PhoneWorker] = {}
        self.size = workers

    def __enter__(self) -> PhonePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def worker(self, index: int) -> PhoneWorker:
        if not 0 <= index < self.size:
            raise ValueError(f"worker {index} out of 0..{self.size - 1}")
        if index not in self._workers:
            self._workers[index] = PhoneWorker(self.log_dir, f"worker-{index}")
        return self._workers[index]

    def phone(
        self,
        worker: int,
        bind_ip: str = "127.0.0.1",
        *,
        user: str | None = None,
        password: str | None = None,
        registrar: str | None = None,
        port: int = 0,
        display_name: str | None = None,
    ) -> RemotePhone:
        info = self.worker(worker).request(
            "new_phone",
            bind_ip=bind_ip,
            user=user,
            password=password,
            registrar=registrar,
            port=port,
            display_name=display_name,
        )
        return RemotePhone(self._workers[worker], info)

    def marks(self) -> dict[str, int]:
        """Where each worker's calls stand now (see `hang_up_everything`)."""
        return {w.name: int(w.request("mark")) for w in self._workers.values()}

    def hang_up_everything(self, before: dict[str, int] | None = None, timeout: float = 10.0) -> int:
        """Every leg still up in every worker ends (e.g. after the far end vanished); with
        `before` (from `marks`), only the legs that existed then."""
        return sum(
            int(w.request("hang_up_all", timeout, timeout=timeout, upto=(before or {}).get(w.name)))
            for w in self._workers.values()
        )

    def live_calls(self) -> dict[str, int]:
        return {w.name: int(w.request("live_calls")) for w in self._workers.values()}

    def close(self) -> None:
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()


def _path(p: Path | str | None) -> str | None:
    return None if p is None else str(p)


def _die_with_parent() -> None:
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


# -- the worker -------------------------------------------------------------------------------

_CALL_METHODS = {
    "answer",
    "hangup",
    "reject",
    "send_dtmf",
    "play",
    "stop_playing",
    "record",
    "recording",
    "rx_audio_seconds",
    "wait_confirmed",
    "wait_disconnected",
    "wait_media",
    "wait_rx_audio",
    "wait_dtmf",
}


def _serve(log_dir: Path, requests: IO[str], replies: IO[str]) -> None:
    from tests.support.sip_phone import Call, Phone, PhoneLab

    phones: dict[int, Phone] = {}
    calls: dict[int, Call] = {}

    def call_info(call: Call) -> dict[str, Any]:
        handle = len(calls) + 1
        calls[handle] = call
        return {
            "call": handle,
            "direction": call.direction,
            "invite": call.invite,
            "headers": call.headers,
            "from_user": call.from_user,
            "from_uri": call.from_uri,
            "to_user": call.to_user,
        }

    with PhoneLab(log_dir=log_dir) as lab:
        for line in requests:
            req = json.loads(line)
            op, args = req["op"], req["args"]
            reply: dict[str, Any] = {"seq": req["seq"]}
            try:
                if op == "close":
                    reply["result"] = None
                    replies.write(json.dumps(reply) + "\n")
                    replies.flush()
                    break
                if op == "new_phone":
                    phone = lab.phone(**args)
                    phones[len(phones) + 1] = phone
                    reply["result"] = {
                        "phone": len(phones),
                        "address": phone.address,
                        "port": phone.port,
                        "user": phone.user,
                        "bind_ip": phone.bind_ip,
                    }
                elif op == "call":
                    phone = phones[args.pop("phone")]
                    reply["result"] = call_info(phone.call(args.pop("uri"), **args))
                elif op == "wait_incoming":
                    phone = phones[args["phone"]]
                    reply["result"] = call_info(phone.wait_incoming(args["timeout"], to_user=args["to_user"]))
                elif op == "phone":
                    getattr(phones[args["phone"]], args["method"])(timeout=args["timeout"])
                    reply["result"] = None
                elif op == "call_method":
                    method = args["method"]
                    if method not in _CALL_METHODS:
                        raise PhoneError(f"no call method {method!r}")
                    result = getattr(calls[args["call"]], method)(**args["args"])
                    reply["result"] = str(result) if isinstance(result, Path) else result
                elif op == "status":
                    call = calls[args["call"]]
                    reply["result"] = {
                        "confirmed": call.is_confirmed,
                        "disconnected": call.is_disconnected,
                        "state": call.state_text,
                        "last_status": call.last_status_code,
                    }
                elif op == "mark":
                    reply["result"] = len(calls)
                elif op == "hang_up_all":
                    upto = args["upto"] if args["upto"] is not None else len(calls)
                    live = [c for h, c in calls.items() if h <= upto and not c.is_disconnected]
                    for call in live:
                        with contextlib.suppress(PhoneError):
                            call.hangup()
                    for call in live:
                        with contextlib.suppress(PhoneError):
                            call.wait_disconnected(timeout=args["timeout"])
                    reply["result"] = len(live)
                elif op == "live_calls":
                    reply["result"] = sum(1 for c in calls.values() if not c.is_disconnected)
                else:
                    raise PhoneError(f"unknown request {op!r}")
            except Exception as exc:
                kind = "PhoneTimeout" if isinstance(exc, PhoneTimeout) else type(exc).__name__
                print(traceback.format_exc(), file=sys.stderr, flush=True)
                reply["error"] = {"type": kind, "message": str(exc)}
            replies.write(json.dumps(reply) + "\n")
            replies.flush()


def main() -> None:
    # Replies get their own copy of stdout; anything else printed (C libraries) goes to stderr.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    _serve(Path(sys.argv[1]), sys.stdin, replies)


if __name__ == "__main__":
    main()
