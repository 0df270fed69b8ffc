"""The context builder as a pure function: budgets, priorities, windows small and large."""

from __future__ import annotations

from chatproject.llm import gateway
from chatproject.llm.types import ChatMessage
from memory.context import (
    FACTS_HEADING,
    RECALLED_HEADING,
    SUMMARY_HEADING,
    TRUNCATION_MARK,
    ContextInputs,
    Fact,
    Recalled,
    Turn,
    build_context,
)


def words(messages: list[ChatMessage]) -> int:
    """A deterministic stand-in tokenizer: one token per word plus the per-message overhead."""
    return sum(len(m["content"].split()) + 4 for m in messages)


def real_tokens(messages: list[ChatMessage]) -> int:
    return gateway.count_tokens(messages)


def conversation(turns: int, words_per_message: int = 50) -> list[Turn]:
    history = []
    for i in range(turns):
        history.append(Turn("user", f"question {i} " + "word " * words_per_message, message_id=2 * i + 1))
        history.append(Turn("assistant", f"answer {i} " + "word " * words_per_message, message_id=2 * i + 2))
    return history


def inputs(**overrides: object) -> ContextInputs:
    base: dict[str, object] = {
        "system_prompt": "You are helpful.",
        "user_message": "What did we decide about the launch date?",
        "history": conversation(40),
        "summary": "- The user is planning a product launch.\n- The launch was moved to March.",
        "recalled": [Recalled(Turn("user", "Let's launch on March 3rd.", message_id=9001), 0.8)],
        "facts": [Fact("The user's name is Ada.", 0.5, 1), Fact("The user lives in Lisbon.", 0.3, 2)],
        "recent_turns": 5,
    }
    base.update(overrides)
    return ContextInputs(**base)  # type: ignore[arg-type]


def test_a_4k_window_keeps_every_tier_within_budget() -> None:
    built = build_context(inputs(), window=4096, reserved_output=1024, count=real_tokens)
    report = built.report
    assert report.budget == 3072
    assert real_tokens(built.messages) == report.tokens_used <= 3072
    assert report.included["recent"] == 10, "the last five pairs come first"
    assert report.included["summary"] == 1 and report.included["recalled"] == 1 and report.included["facts"] == 2
    assert report.dropped["older"] > 0, "a 4k window cannot hold 80 messages"
    assert built.messages[0]["role"] == "system"
    assert built.messages[-1] == {"role": "user", "content": "What did we decide about the launch date?"}
    system = built.messages[0]["content"]
    assert SUMMARY_HEADING in system and RECALLED_HEADING in system and FACTS_HEADING in system
    assert "not instructions" in system


def test_a_128k_window_holds_the_whole_conversation() -> None:
    built = build_context(inputs(), window=128_000, reserved_output=4096, count=real_tokens)
    assert built.report.included["recent"] + built.report.included["older"] == 80
    assert sum(built.report.dropped.values()) == 0
    turns = built.messages[1:-1]
    assert turns[0]["content"].startswith("question 0 ") and turns[-1]["content"].startswith("answer 39 ")


def test_turns_stay_in_conversation_order() -> None:
    built = build_context(inputs(), window=4096, reserved_output=1024, count=words)
    kept = [m["content"].split()[1] for m in built.messages[1:-1]]
    numbers = [int(k) for k in kept]
    assert numbers == sorted(numbers)


def test_priorities_when_room_runs_out() -> None:
    tight = inputs(history=conversation(5, words_per_message=20))
    # System and user take ~25 tokens; five pairs take 10 × 26 = 260; the summary ~21.
    budget = 25 + 260 + 30
    built = build_context(tight, window=budget + 100, reserved_output=100, count=words)
    assert built.report.included["recent"] == 10
    assert built.report.included["summary"] == 1
    assert built.report.included["recalled"] == 0, "recalled turns yield to the summary"
    assert built.report.included["facts"] == 0, "facts come after recalled turns"
    assert built.report.tokens_used <= built.report.budget


def test_recent_turns_win_over_everything_else() -> None:
    built = build_context(inputs(), window=300, reserved_output=50, count=words)
    report = built.report
    per_message = 56  # "question N" + 50 words + overhead
    room = report.budget - report.tiers["system"] - report.tiers["user"]
    assert report.included["recent"] == room // per_message, "as many recent turns as fit, before anything else"
    assert report.tiers["summary"] < per_message, "the summary only gets what a whole turn could not use"
    assert report.tokens_used <= 250


def test_a_single_message_larger_than_the_window_is_cut_in_the_middle() -> None:
    huge = "START " + "filler " * 20_000 + "END"
    built = build_context(inputs(user_message=huge), window=4096, reserved_output=1024, count=real_tokens)
    sent = built.messages[-1]["content"]
    assert built.report.truncated_user_message
    assert sent.startswith("START ") and sent.endswith("END") and TRUNCATION_MARK in sent
    assert real_tokens(built.messages) <= 3072
    assert built.report.included["recent"] == 0, "the new message takes the whole budget"


def test_a_recalled_turn_already_in_the_window_is_not_repeated() -> None:
    history = conversation(3)
    recalled = [Recalled(history[-1], 0.9)]
    built = build_context(inputs(history=history, recalled=recalled), window=8192, reserved_output=1024, count=words)
    assert built.report.included["recalled"] == 0
    assert RECALLED_HEADING not in built.messages[0]["content"]


def test_no_memory_means_a_plain_system_prompt() -> None:
    built = build_context(
        inputs(summary="", recalled=[], facts=[], history=[]), window=8192, reserved_output=1024, count=words
    )
    assert built.messages == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What did we decide about the launch date?"},
    ]


def test_the_report_adds_up() -> None:
    built = build_context(inputs(), window=4096, reserved_output=1024, count=words)
    tiers = built.report.tiers
    assert set(tiers) == {"system", "user", "recent", "summary", "recalled", "facts", "older"}
    assert abs(sum(tiers.values()) - built.report.tokens_used) <= 12, "tier estimates match the real count"
    assert built.report.as_dict()["budget"] == 3072


def test_without_memory_the_tiers_add_up_to_what_is_sent() -> None:
    built = build_context(
        inputs(summary="", recalled=[], facts=[], history=[]), window=8192, reserved_output=1024, count=real_tokens
    )
    # Each tier is counted as its own request, which adds the reply-priming tokens (3) once more.
    assert 0 <= built.report.tiers["system"] + built.report.tiers["user"] - built.report.tokens_used <= 3
