"""A project-local Asterisk instance: rendered config, generated secrets, a supervised process.

Each instance lives in ``<var>/asterisk/<instance>/`` with its own etc, run, log, lib and
spool dirs and its own ports, so several run side by side from one install (the contact
center, a test carrier, a customer's fax machine).

If the app is killed, Asterisk keeps running (it is in its own session) and keeps the
calls up; the next start adopts it instead of starting a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import os
import re
import secrets as pysecrets
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from app.adapters.certificates import CertFiles, ensure_certificate
from app.adapters.hold_music import SYSTEM_MOH
from app.adapters.parent_death import dies_with_us
from app.config import AgentSettings, AsteriskSettings, Settings, sip_accounts
from app.errors import PbxError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "asterisk-conf"
DIALPLANS = REPO_ROOT / "dialplans"
SYSTEM_SOUNDS = Path("/usr/share/asterisk/sounds")

# res_mwi_external would take the voicemail provider slot that app_voicemail needs.
EXCLUDED_MODULES = frozenset(
    {"res_mwi_external.so", "res_ari_mailboxes.so", "res_stasis_mailbox.so", "res_adsi.so"}
)

# Start-up fails if any of these cannot load: without them nothing works.
REQUIRED_MODULES = (
    "res_pjsip.so",
    "chan_pjsip.so",
    "res_http_websocket.so",
    "res_ari.so",
    "res_stasis.so",
    "app_stasis.so",
    "pbx_config.so",
    "res_rtp_asterisk.so",
    "codec_ulaw.so",
    "format_wav.so",
)


@dataclass(frozen=True)
class Secrets:
    ami_user: str
    ami_password: str
    ari_user: str
    ari_password: str
    agent_passwords: Mapping[str, str]
    # Bearer token for the supervisor/admin HTTP API until panel logins exist.
    api_token: str


def load_or_create_secrets(var_dir: Path, agent_ids: list[str]) -> Secrets:
    """Secrets are generated once per var dir (mode 0600), never committed."""
    path = var_dir / "secrets.yaml"
    data: dict[str, object] = {}
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if isinstance(loaded, dict):
            data = loaded
    changed = False

    def secret(key: str) -> str:
        nonlocal changed
        value = data.get(key)
        if not isinstance(value, str) or len(value) < 16:
            value = pysecrets.token_urlsafe(18)
            data[key] = value
            changed = True
        return value

    ami = secret("ami_password")
    ari = secret("ari_password")
    api = secret("api_token")
    agents_raw = data.get("agent_passwords")
    agents: dict[str, str] = dict(agents_raw) if isinstance(agents_raw, dict) else {}
    for agent_id in agent_ids:
        if not isinstance(agents.get(agent_id), str):
            # Short enough to type into a softphone, long enough not to be guessed.
            agents[agent_id] = pysecrets.token_urlsafe(9)
            changed = True
    data["agent_passwords"] = agents
    if changed:
        var_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(data, f, sort_keys=True)
        os.replace(tmp, path)
    return Secrets("lianluo", ami, "lianluo", ari, {k: str(v) for k, v in agents.items()}, api)


@dataclass(frozen=True)
class InstancePaths:
    root: Path
    etc: Path
    run: Path
    log: Path
    lib: Path
    spool: Path
    data: Path

    @property
    def config_file(self) -> Path:
        return self.etc / "asterisk.conf"

    @property
    def control_socket(self) -> Path:
        return self.run / "asterisk.ctl"

    @property
    def pid_file(self) -> Path:
        return self.run / "asterisk.pid"

    @classmethod
    def under(cls, var_dir: Path, instance: str) -> InstancePaths:
        root = (var_dir / "asterisk" / instance).resolve()
        return cls(
            root, root / "etc", root / "run", root / "log", root / "lib", root / "spool", root / "data"
        )


class InstanceBusy(PbxError):
    pass


def lock_instance(var_dir: Path, instance: str) -> int:
    """Hold this instance for the life of the process; a second app for it is refused.

    The kernel drops the lock when the process dies, even by SIGKILL, so a restart after
    a crash is never blocked by a stale lock.
    """
    root = InstancePaths.under(var_dir, instance).root
    root.mkdir(parents=True, exist_ok=True)
    path = root / "lianluo.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise InstanceBusy(
            f"another Lianluo (pid {holder}) is already running instance {instance!r} in {root}; "
            "stop it first, or give this one another asterisk.instance and ports"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def running_app_pid(lock_file: Path) -> int | None:
    """The pid of the Lianluo holding this instance's lock, or None if none holds it."""
    try:
        fd = os.open(lock_file, os.O_RDWR)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(fd, fcntl.LOCK_UN)  # we got it: nobody runs this instance
        return None
    finally:
        os.close(fd)


_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


def render_template(text: str, values: Mapping[str, str], name: str) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise PbxError(f"template {name} uses unknown placeholder {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(sub, text)


def _carrier_sections(settings: Settings) -> str:
    c = settings.carrier
    lines = [
        f"[{c.name}]",
        "type = endpoint",
        "context = from-carrier",
        "disallow = all",
        "allow = ulaw,alaw,g722",
        "direct_media = no",
        "rtp_symmetric = yes",
        "force_rport = yes",
        "dtmf_mode = rfc4733",
        "trust_id_inbound = yes",
        *(
            ["t38_udptl = yes", "t38_udptl_ec = redundancy", "t38_udptl_maxdatagram = 400"]
            if settings.fax.t38
            else []
        ),
        "",
        f"[{c.name}-identify]",
        "type = identify",
        f"endpoint = {c.name}",
    ]
    lines += [f"match = {m}" for m in c.match]
    if c.outbound_contact is not None:
        # Calls we place go only here, and only from the application (ARI originate):
        # no dialplan context can reach this trunk.
        lines.insert(2, f"aors = {c.name}")
        lines += ["", f"[{c.name}]", "type = aor", f"contact = {c.outbound_contact}", "qualify_frequency = 0"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class WebRtcMedia:
    """What every WebRTC agent endpoint shares: the DTLS certificate, where media goes, codecs."""

    cert: CertFiles
    # The RTP address offered to browsers (ICE host candidate); None: every interface.
    media_address: str | None
    # Asterisk's open-source build has no Opus transcoder; offer Opus only if one is installed.
    opus: bool


def webrtc_media_address(settings: Settings) -> str | None:
    """Media goes where the signalling goes: loopback with plain ws (the browser is on this
    machine), the wss listener's address otherwise."""
    a = settings.asterisk
    if a.webrtc_socket == "ws":
        return "127.0.0.1"
    return None if ipaddress.ip_address(a.wss_bind).is_unspecified else a.wss_bind


def _webrtc_lines(agent: AgentSettings, media: WebRtcMedia) -> list[str]:
    lines = [
        # webrtc = yes: ice_support, use_avpf, rtcp_mux, media_use_received_transport, and
        # DTLS-SRTP (media_encryption = dtls, dtls_verify = fingerprint, dtls_setup = actpass).
        "webrtc = yes",
        f"dtls_cert_file = {media.cert.cert}",
        f"dtls_private_key = {media.cert.key}",
        "dtls_auto_generate_cert = no",
    ]
    if media.media_address is not None:
        lines += [f"media_address = {media.media_address}", "bind_rtp_to_media_address = yes"]
    return lines


def _agent_sections(settings: Settings, secrets: Secrets, webrtc: WebRtcMedia | None = None) -> str:
    out: list[str] = []
    for agent in sip_accounts(settings):
        codecs = list(agent.codecs)
        if agent.webrtc and webrtc is not None and webrtc.opus and "opus" not in codecs:
            codecs.insert(0, "opus")
        out.append(
            "\n".join(
                [
                    f"[{agent.id}]",
                    "type = endpoint",
                    "context = agents",
                    "disallow = all",
                    f"allow = {','.join(codecs)}",
                    f"auth = {agent.id}-auth",
                    f"aors = {agent.id}",
                    f'callerid = "{agent.name}" <{agent.id}>',
                    "direct_media = no",
                    "rtp_symmetric = yes",
                    "force_rport = yes",
                    "rewrite_contact = yes",
                    "dtmf_mode = rfc4733",
                    *(_webrtc_lines(agent, webrtc) if agent.webrtc and webrtc is not None else []),
                    "",
                    f"[{agent.id}-auth]",
                    "type = auth",
                    "auth_type = digest",
                    f"username = {agent.id}",
                    f"password = {secrets.agent_passwords[agent.id]}",
                    "",
                    f"[{agent.id}]",
                    "type = aor",
                    *(
                        [f"contact = {agent.contact}"]
                        if agent.contact
                        else ["max_contacts = 1", "remove_existing = yes"]
                    ),
                    "qualify_frequency = 30",
                    "",
                ]
            )
        )
    return "\n".join(out)


def _http_tls(settings: Settings, cert: CertFiles | None) -> str:
    """Asterisk's TLS listener, for browsers' wss SIP; only when an agent uses WebRTC."""
    if cert is None:
        return "; No TLS listener: no agent uses the browser softphone (webrtc: true)."
    a = settings.asterisk
    host = f"[{a.wss_bind}]" if ":" in a.wss_bind else a.wss_bind
    return "\n".join(
        [
            "; wss for the browser softphones, with the certificate generated into var/tls/.",
            "tlsenable = yes",
            f"tlsbindaddr = {host}:{a.wss_port}",
            f"tlscertfile = {cert.cert}",
            f"tlsprivatekey = {cert.key}",
        ]
    )


def transport_nat(a: AsteriskSettings) -> str:
    """The transports' NAT lines: what phones outside `local_nets` are told is Asterisk's address."""
    if not a.external_address:
        return "; no NAT: every phone is told Asterisk's own address (asterisk.external_address)"
    lines = [
        f"external_media_address = {a.external_address}",
        f"external_signaling_address = {a.external_address}",
    ]
    if a.external_sip_port is not None:
        lines.append(f"external_signaling_port = {a.external_sip_port}")
    lines += [f"local_net = {net}" for net in a.local_nets]
    return "\n".join(lines)


def _ami_permit(api_bind: str) -> str:
    """AMI takes loopback peers only, unless it listens beyond loopback (containers: the app is
    another host on the container network); the AMI password guards it there."""
    if ipaddress.ip_address(api_bind).is_loopback:
        return "permit = 127.0.0.1/255.255.255.255"
    return "permit = 0.0.0.0/0.0.0.0"


def did_extensions(dids: tuple[str, ...], fax_detect: str = "", detected_on: tuple[str, ...] = ()) -> str:
    """Each voice number into the application; on those in `detected_on`, res_fax listens for a
    fax machine's tone first (`fax_detect`, FAXOPT(faxdetect)'s value): only listens, so a
    person's call goes on at once."""
    lines = []
    for did in dids:
        if did in detected_on:
            lines.append(f"exten => {did},1,Set(FAXOPT(faxdetect)={fax_detect})")
            lines.append(f" same => n,Gosub(lianluo-inbound,s,1({did}))")
        else:
            lines.append(f"exten => {did},1,Gosub(lianluo-inbound,s,1({did}))")
        lines.append(" same => n,Hangup()")
    return "\n".join(lines)


def fax_detect_option(settings: Settings) -> str:
    """FAXOPT(faxdetect) for the voice numbers: the calling tone (CNG) for the window's seconds.
    Not `t38` as well: res_fax swallows a T.38 switch request it hears where the channel's context
    has no `fax` extension (a fax sent on the call, lianluo-fax-session), so that fax would fail."""
    return f"cng,{settings.fax.detect_window_s}"


def render_instance(
    settings: Settings, secrets: Secrets, prefix: Path, var_dir: Path, hold_music: Path = SYSTEM_MOH
) -> InstancePaths:
    """Write the instance's config from the templates. Idempotent; safe while running.
    `hold_music`: the folder of the music callers hear (app/adapters/hold_music.py)."""
    paths = InstancePaths.under(var_dir, settings.asterisk.instance)
    # spool/recording: ARI's stored recordings (voicemail) are written there.
    for d in (paths.etc, paths.run, paths.log, paths.lib / "keys", paths.spool / "recording", paths.data):
        d.mkdir(parents=True, exist_ok=True)
    # astdatadir: system prompts and music from Debian's packages, ARI docs from the install.
    links = {
        "sounds": SYSTEM_SOUNDS,
        "moh": hold_music,
        "rest-api": prefix / "var/lib/asterisk/rest-api",
        "static-http": prefix / "var/lib/asterisk/static-http",
        "documentation": prefix / "var/lib/asterisk/documentation",
    }
    for name, target in links.items():
        link = paths.data / name
        if link.is_symlink() or link.exists():
            if link.is_symlink() and Path(os.readlink(link)) == target:
                continue
            link.unlink()
        link.symlink_to(target)
    moddir = prefix / "lib/asterisk/modules"
    available = sorted(p.name for p in moddir.glob("*.so") if p.name not in EXCLUDED_MODULES)
    missing = [m for m in REQUIRED_MODULES if m not in available]
    if missing:
        raise PbxError(f"Asterisk install at {prefix} lacks required modules: {', '.join(missing)}")
    a = settings.asterisk
    webrtc: WebRtcMedia | None = None
    if any(account.webrtc for account in sip_accounts(settings)):
        webrtc = WebRtcMedia(
            ensure_certificate(var_dir, [a.wss_bind]),
            webrtc_media_address(settings),
            "codec_opus.so" in available,
        )
    values = {
        "prefix": str(prefix),
        "etc_dir": str(paths.etc),
        "run_dir": str(paths.run),
        "log_dir": str(paths.log),
        "lib_dir": str(paths.lib),
        "spool_dir": str(paths.spool),
        "data_dir": str(paths.data),
        "http_port": str(a.http_port),
        "http_tls": _http_tls(settings, webrtc.cert if webrtc else None),
        "ami_port": str(a.ami_port),
        "api_bind": a.api_bind,
        "ami_permit": _ami_permit(a.api_bind),
        "sip_bind": a.sip_bind,
        "sip_port": str(a.sip_port),
        "transport_nat": transport_nat(a),
        "rtp_start": str(a.rtp_start),
        "rtp_end": str(a.rtp_end),
        "ari_user": secrets.ari_user,
        "ari_password": secrets.ari_password,
        "ami_user": secrets.ami_user,
        "ami_password": secrets.ami_password,
        "ari_app": settings.ari_app,
        "required_modules": "\n".join(f"require = {m}" for m in REQUIRED_MODULES),
        "optional_modules": "\n".join(f"load = {m}" for m in available if m not in REQUIRED_MODULES),
        "carrier_sections": _carrier_sections(settings),
        "agent_sections": _agent_sections(settings, secrets, webrtc),
        "did_extensions": did_extensions(
            settings.carrier.dids,
            fax_detect_option(settings),
            settings.fax.detected_on(settings.carrier.dids),
        ),
        "fax_did_extensions": "\n".join(
            f"exten => {did},1,Gosub(lianluo-fax-in,s,1({did}))\n same => n,Hangup()"
            for did in settings.fax.dids
        ),
        "agent_extensions": "\n".join(
            f"exten => {ag.id},1,Dial(PJSIP/{ag.id},30)\n same => n,Hangup()" for ag in settings.agents
        ),
        "agent_did_extensions": did_extensions(settings.carrier.dids),
    }
    sources = sorted(TEMPLATES.glob("*.conf")) + sorted(DIALPLANS.glob("*.conf"))
    for src in sources:
        text = render_template(src.read_text(), values, src.name)
        dest = paths.etc / src.name
        tmp = dest.with_suffix(".conf.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, dest)
    return paths


def _socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


class AsteriskProcess:
    """Starts (or adopts) one Asterisk instance and restarts it if it dies."""

    def __init__(self, prefix: Path, paths: InstancePaths, *, external: bool = False) -> None:
        self.prefix = prefix
        self.paths = paths
        # Started elsewhere (asterisk.manage: false, e.g. its own container): its pid is not ours
        # to see, so it counts as running while its control socket answers.
        self.external = external
        self._proc: asyncio.subprocess.Process | None = None
        self._pid: int | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0

    @property
    def binary(self) -> Path:
        return self.prefix / "sbin/asterisk"

    def _live_pid(self) -> int | None:
        try:
            pid = int(self.paths.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        # A recycled pid would not hold our control socket.
        if not self.paths.control_socket.exists():
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if str(self.paths.config_file).encode() in cmdline else None

    async def start(self, boot_timeout: float = 60.0) -> None:
        pid = self._live_pid()
        if pid is not None:
            log.info("adopting running Asterisk pid %s (%s)", pid, self.paths.root)
            self._pid = pid
        else:
            await self._spawn()
        await self.wait_booted(boot_timeout)
        if pid is not None:
            # The AMI user's rights were rendered afresh (an upgrade may add an event class,
            # e.g. `security` for SIP bans); the app's AMI login comes after this.
            try:
                await self.cli("manager reload")
            except PbxError as exc:
                log.warning("could not reload AMI users of the adopted Asterisk: %s", exc)
        self._supervisor = asyncio.create_task(self._supervise(), name="asterisk-supervisor")

    async def _spawn(self) -> None:
        log.info("starting Asterisk (%s)", self.paths.root)
        # A local log file opened once per start; not worth a thread.
        out = open(self.paths.log / "console.log", "ab")  # noqa: ASYNC230
        try:
            self._proc = await asyncio.create_subprocess_exec(
                str(self.binary),
                "-C",
                str(self.paths.config_file),
                "-f",
                "-n",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                # Own session: Ctrl-C on the app must not kill calls mid-flight, and a
                # killed app must leave Asterisk running for the next start to adopt.
                start_new_session=True,
            )
        finally:
            out.close()
        self._pid = self._proc.pid

    async def cli(self, command: str, timeout: float = 15.0) -> str:
        proc = await asyncio.create_subprocess_exec(
            str(self.binary),
            "-C",
            str(self.paths.config_file),
            "-rx",
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=dies_with_us(),  # unlike Asterisk itself, a CLI command dies with the app
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise PbxError(f"asterisk -rx {command!r} timed out") from None
        if proc.returncode != 0:
            raise PbxError(f"asterisk -rx {command!r} failed: {out.decode(errors='replace').strip()}")
        return out.decode(errors="replace")

    async def wait_booted(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.returncode is not None:
                raise PbxError(
                    f"Asterisk exited with code {self._proc.returncode} during start-up; "
                    f"see {self.paths.log / 'console.log'} and {self.paths.log / 'messages.log'}"
                )
            if self.paths.control_socket.exists():
                try:
                    await self.cli("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
                    log.info("Asterisk fully booted (%s)", self.paths.root)
                    return
                except PbxError as exc:
                    last = str(exc)
            await asyncio.sleep(0.1)
        raise PbxError(f"Asterisk did not boot within {timeout:.0f} s: {last}")

    async def _supervise(self) -> None:
        backoff = 1.0
        while not self._stopping:
            if self._proc is not None:
                code = await self._proc.wait()
            else:
                # Adopted: not our child, so there is nothing to await; poll its pid.
                while self._pid is not None and self._live_pid() == self._pid:  # noqa: ASYNC110
                    await asyncio.sleep(1.0)
                code = -1
            if self._stopping:
                return
            log.error("Asterisk exited unexpectedly (code %s); restarting in %.0f s", code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
            try:
                await self._spawn()
                await self.wait_booted(60.0)
                self.restarts += 1
                backoff = 1.0
            except PbxError:
                log.exception("Asterisk restart failed")

    @property
    def pid(self) -> int | None:
        return self._pid

    async def leave_running(self) -> None:
        """Stop watching it without stopping it: the app hands over to its next start, which
        adopts this Asterisk with its calls."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor

    @property
    def running(self) -> bool:
        if self.external:
            return _socket_answers(self.paths.control_socket)
        return self._pid is not None and self._live_pid() == self._pid

    async def stop(self, timeout: float = 15.0) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        pid = self._pid
        if pid is None or self._live_pid() != pid:
            return
        log.info("stopping Asterisk pid %s", pid)
        with contextlib.suppress(PbxError):
            await self.cli("core stop now", timeout=5.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._proc.wait(), 0.2)
                if self._proc.returncode is not None:
                    return
            elif self._live_pid() != pid:
                return
            else:
                await asyncio.sleep(0.1)
        log.warning("Asterisk pid %s did not stop; killing it", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
