"""Replaying a call ``up --shadow`` recorded: against production's answer, ``--ignore``d."""

from __future__ import annotations

from tests.unit.recording.test_format import exchange
from tests.unit.recording.test_format_shadow import DENIED
from tests.unit.serving.test_proxy import FakeUpstream
from webhook_dev.replay.replayer import replay_exchange
from webhook_dev.reviews.comparison import Comparison, Difference, Ignore
from webhook_dev.reviews.shadow import ControlAnswer, ShadowCall


def shadowed() -> ShadowCall:
    return ShadowCall(
        entry="e/x",
        control=ControlAnswer(200, DENIED),
        comparison=Comparison((Difference("allowed", None, None),)),
    )


async def test_a_shadowed_call_is_compared_with_productions_answer() -> None:
    # The recorded (local) answer allowed; production denied; the code still allows.
    result = await replay_exchange(exchange(shadow=shadowed()), FakeUpstream())
    assert result.comparison.fields == ("allowed", "status.message")
    plain = await replay_exchange(exchange(), FakeUpstream())
    assert plain.comparison.matches  # without shadow: the recorded answer, as before


async def test_ignore_mutes_a_known_difference_in_replay() -> None:
    ignore = Ignore.parse(["/allowed", "/status/message"])
    result = await replay_exchange(exchange(shadow=shadowed()), FakeUpstream(), ignore=ignore)
    assert result.comparison.matches
