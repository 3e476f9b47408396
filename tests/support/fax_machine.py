"""A second Asterisk playing a customer's fax machine (res_fax_spandsp, G.711), and page checks.

It listens on 127.0.0.2 (the carrier's address, so Lianluo takes its calls as the carrier's) and
calls Lianluo at 127.0.0.1:<its SIP port>:

- `ask_for_documents(number, steps)`: dials the number, keys the document codes as a caller at
  a fax machine would (each group of keys after its pause), then "presses start": ReceiveFAX.
- `send(number, tiff)`: dials the number and sends the TIFF with SendFAX.
- Lianluo's calls to it (the carrier's outbound contact, `contact`) are answered with ReceiveFAX
  into `<number>.tif`; `busy_once(number)` makes the next call to that number busy, and
  `cut_once(number)` tags it `<number>-cut` (its pages in `<number>-cut.tif`), for the test to
  drop with `hang_up()` once it has seen enough pages.

Each call ends with `<tag>.done` in the machine's directory: Asterisk's fax status, pages and
error, as its `h` extension saw them. A received fax is `<tag>.tif`.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.config import PromptText
from tests.support.audio import duration
from tests.support.calls import prompt_wav
from tests.support.peer_asterisk import PeerAsterisk
from tests.support.stack import eventually

STATION_ID = "+86 10 5555 0100"
NUMBER = "13800138000"  # the fax machine's own number (its caller ID)
# The first keys go this long after the answer, once the first prompt (interruptible) plays.
FIRST_KEYS_S = 3.0
# Keys pressed while a prompt that keys cannot interrupt plays are lost, so the next group waits
# for its end: the prompt's own length plus this much, for a busy machine.
MARGIN_S = 2.5


def after(*prompts: Sequence[PromptText]) -> float:
    """How long to wait after a key group for the uninterruptible prompts it sets off (their
    audio as the app cached it) to be over."""
    return sum(duration(prompt_wav(p)) for prompt in prompts for p in prompt) + MARGIN_S


class FaxMachine(PeerAsterisk):
    name = "the fax machine"
    dirs = ("faxes",)

    def __init__(self, root: Path, t38: bool = False) -> None:
        super().__init__(root)
        self.t38 = t38  # offer T.38 (fax over UDPTL) besides G.711
        self.lianluo_port = 0  # Lianluo's SIP port, given at start
        self.calls = 0

    @property
    def faxes(self) -> Path:
        return self.root / "faxes"

    def start(self, lianluo_port: int) -> None:
        self.lianluo_port = lianluo_port
        self.prepare()
        self._write_config()
        self.launch()
        assert "res_fax_spandsp" in self.cli("module show like fax"), "res_fax_spandsp is not loaded"

    # -- calls ------------------------------------------------------------------

    def _call(self, number: str, extension: str, **globals_: str) -> str:
        self.calls += 1
        tag = f"call{self.calls}"
        for name, value in {"TAG": tag, **globals_}.items():
            self.cli(f"dialplan set global {name} {value}")
        self.cli(f"channel originate PJSIP/{number}@lianluo extension {extension}@faxmachine")
        return tag

    def ask_for_documents(self, number: str, steps: list[tuple[float, str]]) -> str:
        """Call; for each (pause, keys) of `steps` wait that long, then key them (the prompts play
        meanwhile); then receive the fax. Returns the call's tag."""
        pauses = "-".join(f"{pause:.1f}" for pause, _ in steps)
        return self._call(number, "ondemand", KEYS="-".join(k for _, k in steps), PAUSES=pauses)

    def send(self, number: str, tiff: Path, cut_after_s: int = 0) -> str:
        """Send `tiff`; with `cut_after_s`, the line drops that long after the answer."""
        return self._call(number, "send", FAXFILE=str(tiff), CUT=str(cut_after_s))

    def done(self, tag: str, timeout: float = 240) -> dict[str, str]:
        """Wait for the call's end; what Asterisk's fax session said (status, pages, error)."""
        path = self.faxes / f"{tag}.done"

        def report() -> str | None:
            return path.read_text().strip() or None if path.exists() else None

        text = eventually(report, timeout, f"fax call {tag} to end")
        status, pages, error = [*text.split("|"), "", "", ""][:3]
        return {"status": status, "pages": pages, "error": error}

    def busy_once(self, number: str) -> None:
        self.cli(f"dialplan set global BUSY_{number} 1")

    def cut_once(self, number: str) -> None:
        self.cli(f"dialplan set global CUT_{number} 1")

    def hang_up(self) -> None:
        """Drop the machine's line (every call on it: a test has one at a time)."""
        self.cli("channel request hangup all")

    def received(self, tag: str) -> Path:
        return self.faxes / f"{tag}.tif"

    def _write_config(self) -> None:
        etc, r = self.root / "etc", self.root
        modules = self.prefix / "lib" / "asterisk" / "modules"
        (etc / "asterisk.conf").write_text(
            "[directories]\n"
            f"astetcdir => {etc}\nastmoddir => {modules}\nastvarlibdir => {r / 'lib'}\n"
            f"astdbdir => {r / 'lib'}\nastkeydir => {r / 'lib'}\nastdatadir => {r / 'data'}\n"
            f"astagidir => {r / 'data'}\nastspooldir => {r / 'spool'}\nastrundir => {r / 'run'}\n"
            f"astlogdir => {r / 'log'}\nastsbindir => {self.prefix / 'sbin'}\n"
            "[options]\nverbose = 2\nastctl = asterisk.ctl\n"
        )
        lines = ["[modules]", "autoload = yes", "noload = chan_audiosocket.so", "noload = res_ari.so"]
        (etc / "modules.conf").write_text("\n".join(lines) + "\n")
        (etc / "logger.conf").write_text("[logfiles]\nmessages.log => notice,warning,error,verbose(3)\n")
        (etc / "rtp.conf").write_text("[general]\nrtpstart = 34000\nrtpend = 34999\n")
        (etc / "udptl.conf").write_text("[general]\nudptlstart = 35000\nudptlend = 35999\n")
        (etc / "pjsip.conf").write_text(
            "[udp]\ntype = transport\nprotocol = udp\n"
            f"bind = 127.0.0.2:{self.port}\n\n"
            "[lianluo]\ntype = endpoint\ncontext = faxmachine\ndisallow = all\nallow = ulaw\n"
            f'direct_media = no\nrtp_symmetric = yes\ncallerid = "Fax" <{NUMBER}>\n'
            f"from_user = {NUMBER}\naors = lianluo\n"
            + (
                "t38_udptl = yes\nt38_udptl_ec = redundancy\nt38_udptl_maxdatagram = 400\n"
                if self.t38
                else ""
            )
            + "\n"
            f"[lianluo]\ntype = aor\ncontact = sip:127.0.0.1:{self.lianluo_port}\n\n"
            "[lianluo-identify]\ntype = identify\nendpoint = lianluo\nmatch = 127.0.0.1\n"
        )
        faxes = self.faxes
        station = STATION_ID
        (etc / "extensions.conf").write_text(
            "[faxmachine]\n"
            "exten => ondemand,1,Set(TAG=${GLOBAL(TAG)})\n"
            " same => n,Set(KEYS=${GLOBAL(KEYS)})\n"
            " same => n,Set(I=1)\n"
            " same => n,Set(PAUSES=${GLOBAL(PAUSES)})\n"
            " same => n(next),Wait(${CUT(PAUSES,-,${I})})\n"
            " same => n,SendDTMF(${CUT(KEYS,-,${I})})\n"
            " same => n,Set(I=$[${I} + 1])\n"
            ' same => n,GotoIf($["${CUT(KEYS,-,${I})}" != ""]?next)\n'
            " same => n,Wait(1)\n"
            f" same => n,Set(FAXOPT(localstationid)={station})\n"
            " same => n,Set(FAXOPT(ecm)=yes)\n"
            f" same => n,ReceiveFAX({faxes}/${{TAG}}.tif)\n"
            " same => n,Hangup()\n"
            "exten => send,1,Set(TAG=${GLOBAL(TAG)})\n"
            " same => n,ExecIf($[${GLOBAL(CUT)} > 0]?Set(TIMEOUT(absolute)=${GLOBAL(CUT)}))\n"
            f" same => n,Set(FAXOPT(localstationid)={station})\n"
            " same => n,Set(FAXOPT(headerinfo)=Customer fax)\n"
            " same => n,Set(FAXOPT(ecm)=yes)\n"
            " same => n,SendFAX(${GLOBAL(FAXFILE)})\n"
            " same => n,Hangup()\n"
            "exten => _X.,1,Set(TAG=${EXTEN})\n"
            ' same => n,GotoIf($["${GLOBAL(BUSY_${EXTEN})}" = "1"]?busy)\n'
            ' same => n,ExecIf($["${GLOBAL(CUT_${EXTEN})}" = "1"]?Set(TAG=${EXTEN}-cut))\n'
            " same => n,Set(GLOBAL(CUT_${EXTEN})=0)\n"
            f" same => n,Set(FAXOPT(localstationid)={station})\n"
            " same => n,Set(FAXOPT(ecm)=yes)\n"
            f" same => n,ReceiveFAX({faxes}/${{TAG}}.tif)\n"
            " same => n,Hangup()\n"
            " same => n(busy),Set(GLOBAL(BUSY_${EXTEN})=0)\n"
            " same => n,Busy(5)\n"
            'exten => h,1,ExecIf($["${FAXSTATUS}" != ""]?System(echo'
            f' "${{FAXSTATUS}}|${{FAXPAGES}}|${{FAXERROR}}" > {faxes}/${{TAG}}.done))\n'
        )


# -- pages --------------------------------------------------------------------------------

Page = npt.NDArray[np.bool_]


def customer_letter(work: Path, pages: int = 3) -> Path:
    """A PDF a customer would fax: on each A4 page a big title and a black box placed by its
    page number, apart from the other pages' boxes (so pages are told apart)."""
    work.mkdir(parents=True, exist_ok=True)
    ps = work / f"letter-{pages}.ps"
    marks = "".join(
        f"60 700 moveto (Customer letter page {n}) show {n * 150} 100 120 250 rectfill showpage\n"
        for n in range(1, pages + 1)
    )
    ps.write_text("%!PS\n/Helvetica-Bold findfont 40 scalefont setfont\n" + marks)
    pdf = ps.with_suffix(".pdf")
    gs = ["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sPAPERSIZE=a4"]
    subprocess.run([*gs, "-sDEVICE=pdfwrite", f"-sOutputFile={pdf}", str(ps)], check=True)
    return pdf


def raster_pages(source: Path, work: Path) -> list[Page]:
    """A fax TIFF (through tiff2pdf) or a PDF as bilevel pages at fine resolution (204 x 196),
    True for black."""
    work.mkdir(parents=True, exist_ok=True)
    pdf = source
    if source.suffix == ".tif":
        pdf = work / f"{source.stem}.pdf"
        subprocess.run(["tiff2pdf", "-o", str(pdf), str(source)], check=True, capture_output=True)
    out = work / f"{source.stem}-%03d.pbm"
    subprocess.run(
        [
            "gs",
            "-q",
            "-dSAFER",
            "-dBATCH",
            "-dNOPAUSE",
            "-sDEVICE=pbmraw",
            "-r204x196",
            f"-sOutputFile={out}",
            str(pdf),
        ],
        check=True,
        capture_output=True,
    )
    return [_read_pbm(p) for p in sorted(work.glob(f"{source.stem}-*.pbm"))]


def _read_pbm(path: Path) -> Page:
    data = path.read_bytes()
    m = re.match(rb"P4\s+(?:#[^\n]*\n\s*)*(\d+)\s+(\d+)\s", data)
    assert m, f"not a raw PBM: {path}"
    width, height = int(m.group(1)), int(m.group(2))
    row_bytes = (width + 7) // 8
    bits = np.frombuffer(data[m.end() : m.end() + row_bytes * height], dtype=np.uint8).reshape(
        height, row_bytes
    )
    return np.unpackbits(bits, axis=1)[:, :width].astype(bool)


def without_header(received: Page, source: Page) -> Page:
    """A received page less the header line the sending fax printed on top (its station id,
    date and page number: the rows the received page has beyond the source's)."""
    extra = max(0, received.shape[0] - source.shape[0])
    return received[extra:]


def similarity(a: Page, b: Page) -> float:
    """Dice coefficient of the black pixels of two pages (1.0: the same marks), over their common area."""
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    a, b = a[:h, :w], b[:h, :w]
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total
