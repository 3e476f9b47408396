"""Agents' phones after Asterisk restarts (app/routing/devices.py): each phone held unreachable
is qualified at once, and again while it stays out, so one lost OPTIONS does not cost its agent
Asterisk's next qualify, 30 s on. The AMI here answers as Asterisk would; the phones' answers
to the OPTIONS are what the test decides.
"""

from __future__ import annotations

from app.routing.devices import bring_back


class Asterisk:
    """PJSIPQualify sends an OPTIONS; a phone in `deaf_for` misses that many of them."""

    def __init__(self, deaf_for: dict[str, int], pings_failing: int = 0) -> None:
        self.deaf_for = deaf_for
        self.pings_failing = pings_failing
        self.reachable: set[str] = set()
        self.qualified: list[str] = []

    async def ping(self, timeout: float = 2.0) -> bool:
        self.pings_failing -= 1
        return self.pings_failing < 0

    async def qualify(self, endpoint: str, timeout: float = 2.0) -> bool:
        self.qualified.append(endpoint)
        if self.deaf_for.get(endpoint, 0) > 0:
            self.deaf_for[endpoint] -= 1
        else:
            self.reachable.add(endpoint)
        return True


async def test_a_phone_that_missed_the_first_qualify_is_back_at_the_next_round() -> None:
    pbx = Asterisk({"1013": 2})
    out = await bring_back(pbx, ["1001", "1013"], lambda a: a not in pbx.reachable, pause_s=0.001)
    assert out == []
    assert pbx.qualified == ["1001", "1013", "1013", "1013"], "only the phone still out is asked again"


async def test_a_phone_gone_for_good_is_given_up_after_the_tries() -> None:
    pbx = Asterisk({"1014": 100}, pings_failing=3)  # AMI reconnecting at first
    out = await bring_back(pbx, ["1014"], lambda a: a not in pbx.reachable, tries=4, pause_s=0.001)
    assert out == ["1014"] and pbx.qualified == ["1014"] * 4


async def test_a_phone_that_came_back_by_itself_is_not_asked_again() -> None:
    pbx = Asterisk({"1001": 5})
    registered = {"1001"}  # it registered again meanwhile (its endpoint event said so)
    out = await bring_back(pbx, ["1001"], lambda a: a not in registered, pause_s=0.001)
    assert out == [] and pbx.qualified == ["1001"]
