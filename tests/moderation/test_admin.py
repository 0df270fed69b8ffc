"""The moderators' review queue in the admin: the queue, the review page, decisions, the dashboard."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations.models import Message
from moderation.detectors.base import CheckContext, Direction, Finding, Span
from moderation.models import Flag, ModerationDecision, Suspension
from moderation.services import REMOVED_TEXT, excerpt_of, mask_spans, report_create, user_is_suspended
from tests.factories import conversation_with_turns

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"\+?\d[\d \-]{7,}\d")


class EmailPhoneDetector:
    """A stand-in "pii" detector, so these tests do not depend on the real one."""

    name = "pii"

    def check(self, text: str, *, direction: Direction, context: CheckContext) -> list[Finding]:
        spans = [Span(m.start(), m.end(), "EMAIL") for m in EMAIL.finditer(text)]
        spans += [Span(m.start(), m.end(), "PHONE") for m in PHONE.finditer(text)]
        return [Finding("pii", 1.0, tuple(spans), "personal data")] if spans else []


def regex_spans(text: str) -> list[Span]:
    return list(EmailPhoneDetector().check(text, direction=Direction.INPUT, context=CheckContext())[0].spans)


@pytest.fixture
def pii_detector(settings: Any) -> None:
    settings.MODERATION_DETECTORS = [{"name": "pii", "path": "tests.moderation.test_admin.EmailPhoneDetector"}]


@pytest.fixture
def no_pii_detector(settings: Any) -> None:
    settings.MODERATION_DETECTORS = []


@pytest.fixture
def moderator(db: None) -> User:
    account = User.objects.create_user(username="mod", password="correct horse battery staple", is_staff=True)
    account.groups.add(Group.objects.get(name="moderators"))
    return account


@pytest.fixture
def mod_client(moderator: User) -> Client:
    client = Client()
    client.force_login(moderator)
    return client


def make_flag(
    *,
    user: User | None = None,
    message: Message | None = None,
    category: str = "toxicity",
    direction: str = Flag.Direction.INPUT,
    status: str = Flag.Review.OPEN,
    excerpt: str = "something bad",
) -> Flag:
    return Flag.objects.create(
        user=user,
        message=message,
        conversation=message.conversation if message else None,
        direction=direction,
        detector="test",
        category=category,
        score=0.9,
        action=Flag.ActionTaken.FLAGGED,
        excerpt=excerpt,
        review_status=status,
    )


def changelist(client: Client, **params: str) -> list[Flag]:
    response = client.get(reverse("admin:moderation_flag_changelist"), params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def review_url(flag: Flag) -> str:
    return reverse("admin:moderation_flag_review", args=[flag.pk])


def decide(client: Client, flag: Flag, decision: str, note: str = "checked the context") -> Any:
    return client.post(review_url(flag), {"decision": decision, "note": note})


# --- The group -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_moderators_group_has_exactly_the_intended_permissions() -> None:
    group = Group.objects.get(name="moderators")
    granted = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
    assert granted == {
        "moderation.view_flag",
        "moderation.change_flag",
        "moderation.review_flag",
        "moderation.view_moderationdecision",
        "moderation.view_suspension",
        "moderation.add_suspension",
        "moderation.change_suspension",
        "conversations.view_conversation",
        "conversations.view_message",
    }


def test_a_moderator_can_open_the_queue_but_not_users(mod_client: Client) -> None:
    assert mod_client.get(reverse("admin:moderation_flag_changelist")).status_code == 200
    assert mod_client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert mod_client.get(reverse("admin:moderation_flag_dashboard")).status_code == 200


# --- The queue -------------------------------------------------------------------------------------


def test_the_queue_lists_open_flags_first_then_newest(mod_client: Client, user: User) -> None:
    confirmed = make_flag(user=user, status=Flag.Review.CONFIRMED)
    old_open = make_flag(user=user)
    dismissed = make_flag(user=user, status=Flag.Review.DISMISSED)
    new_open = make_flag(user=user)
    Flag.objects.filter(pk=old_open.pk).update(created_at=timezone.now() - timedelta(hours=2))

    assert [f.pk for f in changelist(mod_client)] == [new_open.pk, old_open.pk, dismissed.pk, confirmed.pk]


def test_filters_narrow_the_queue(mod_client: Client, user: User, other_user: User) -> None:
    toxic_input = make_flag(user=user, category="toxicity")
    leak_output = make_flag(user=user, category="leakage", direction=Flag.Direction.OUTPUT)
    reviewed = make_flag(user=other_user, category="toxicity", status=Flag.Review.DISMISSED)
    Suspension.objects.create(user=other_user, reason="abuse")

    def ids(**params: str) -> set[int]:
        return {f.pk for f in changelist(mod_client, **params)}

    assert ids(category__exact="toxicity") == {toxic_input.pk, reviewed.pk}
    assert ids(direction__exact="output") == {leak_output.pk}
    assert ids(review_status__exact="open") == {toxic_input.pk, leak_output.pk}
    assert ids(review_status__exact="dismissed", category__exact="toxicity") == {reviewed.pk}
    assert ids(user=str(user.pk)) == {toxic_input.pk, leak_output.pk}
    assert ids(suspended="active") == {reviewed.pk}
    assert ids(suspended="never") == {toxic_input.pk, leak_output.pk}
    assert ids(q="mallory") == {reviewed.pk}


def test_the_queue_masks_personal_data_in_excerpts(mod_client: Client, pii_detector: None, user: User) -> None:
    # A user report stores the reply as it was: the list must mask it all the same.
    _, messages = conversation_with_turns(user, [("hi", "Write to jane.roe@example.org today")])
    report_create(reporter=user, message=messages[1], reason="it leaked an address")

    html = mod_client.get(reverse("admin:moderation_flag_changelist")).content.decode()
    assert "jane.roe@example.org" not in html
    assert mask_spans("jane.roe@example.org", regex_spans("jane.roe@example.org")) in html


# --- The review page -----------------------------------------------------------------------------------


TURNS = [
    ("first question", "first answer"),
    ("second question", "second answer, write to help@example.com"),
    ("my mail is john.doe@example.com and phone +44 20 7946 0958", "third answer"),
    ("fourth question", "fourth answer"),
]


def test_the_review_page_shows_the_flagged_message_among_its_neighbours_with_pii_masked(
    mod_client: Client, pii_detector: None, user: User
) -> None:
    _, messages = conversation_with_turns(user, TURNS)
    flagged = messages[4]
    flag = make_flag(user=user, message=flagged, excerpt=flagged.content)

    response = mod_client.get(review_url(flag))

    assert response.status_code == 200
    lines = response.context["lines"]
    # Three before, two after, on the conversation's branch.
    assert [line.message_id for line in lines] == [m.pk for m in messages[1:7]]
    assert [line.message_id for line in lines if line.flagged] == [flagged.pk]
    html = response.content.decode()
    for secret in ("john.doe@example.com", "+44 20 7946 0958", "help@example.com"):
        assert secret not in html
    assert mask_spans(flagged.content, regex_spans(flagged.content)) in html
    assert "h***@*******.***" in html  # a neighbour's address is masked too
    assert 'id="flagged-message"' in html
    assert 'No "pii" detector' not in html


def test_without_a_pii_detector_the_flags_own_spans_mask_the_message(
    mod_client: Client, no_pii_detector: None, user: User
) -> None:
    _, messages = conversation_with_turns(user, TURNS)
    flagged = messages[4]
    # As flags_record writes it: the excerpt masked with the spans the detector found.
    flag = make_flag(user=user, message=flagged, excerpt=excerpt_of(flagged.content, regex_spans(flagged.content)))

    html = mod_client.get(review_url(flag)).content.decode()

    assert "john.doe@example.com" not in html
    assert "+44 20 7946 0958" not in html
    assert mask_spans(flagged.content, regex_spans(flagged.content)) in html
    assert 'No "pii" detector is configured' in html


def test_a_message_off_the_active_branch_is_shown_with_the_path_to_it(
    mod_client: Client, pii_detector: None, user: User
) -> None:
    conversation, messages = conversation_with_turns(user, TURNS[:2])
    # The user regenerated the second answer: the flagged one is now on an abandoned branch.
    abandoned = messages[3]
    regenerated = Message.objects.create(
        conversation=conversation, parent=messages[2], role="assistant", content="a better answer"
    )
    conversation.active_leaf = regenerated
    conversation.save(update_fields=["active_leaf"])
    flag = make_flag(user=user, message=abandoned, direction=Flag.Direction.OUTPUT)

    lines = mod_client.get(review_url(flag)).context["lines"]

    assert [line.message_id for line in lines] == [m.pk for m in messages[:4]]
    assert lines[-1].flagged


def test_a_flag_without_a_stored_message_shows_its_masked_excerpt(
    mod_client: Client, pii_detector: None, user: User
) -> None:
    flag = make_flag(user=user, excerpt="blocked: reach me at jo@example.net")

    response = mod_client.get(review_url(flag))

    assert response.status_code == 200 and response.context["lines"] == []
    html = response.content.decode()
    assert "jo@example.net" not in html
    assert mask_spans("jo@example.net", regex_spans("jo@example.net")) in html
    assert 'value="delete"' not in html  # nothing to delete


def test_the_review_page_shows_past_decisions(mod_client: Client, moderator: User, user: User) -> None:
    flag = make_flag(user=user)
    decide(mod_client, flag, "dismiss", "false positive, a quote from a film")

    html = mod_client.get(review_url(flag)).content.decode()

    assert "false positive, a quote from a film" in html
    assert list(mod_client.get(review_url(flag)).context["decisions"].values_list("kind", flat=True)) == ["dismiss"]


# --- Decisions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "status", "kind"),
    [
        ("confirm", Flag.Review.CONFIRMED, ModerationDecision.Kind.CONFIRM),
        ("dismiss", Flag.Review.DISMISSED, ModerationDecision.Kind.DISMISS),
    ],
)
def test_confirm_and_dismiss_record_the_decision(
    mod_client: Client, moderator: User, user: User, decision: str, status: str, kind: str
) -> None:
    flag = make_flag(user=user)

    response = decide(mod_client, flag, decision, "read it twice")

    assert response.status_code == 302
    flag.refresh_from_db()
    assert (flag.review_status, flag.reviewer, flag.decision_note) == (status, moderator, "read it twice")
    recorded = ModerationDecision.objects.get(flag=flag)
    assert (recorded.kind, recorded.reviewer, recorded.note, recorded.subject_user) == (
        kind,
        moderator,
        "read it twice",
        user,
    )
    assert LogEntry.objects.filter(object_id=str(flag.pk), user=moderator).exists()


def test_suspending_the_user_makes_their_suspension_active(mod_client: Client, moderator: User, user: User) -> None:
    flag = make_flag(user=user)

    assert decide(mod_client, flag, "suspend", "repeated abuse").status_code == 302

    assert user_is_suspended(user_id=user.pk)
    suspension = Suspension.objects.get(user=user, ended_at__isnull=True)
    assert (suspension.created_by, suspension.reason) == (moderator, "repeated abuse")
    flag.refresh_from_db()
    assert flag.review_status == Flag.Review.CONFIRMED
    assert ModerationDecision.objects.filter(
        flag=flag, kind=ModerationDecision.Kind.SUSPEND_USER, reviewer=moderator, note="repeated abuse"
    ).exists()


def test_deleting_the_message_replaces_its_text(mod_client: Client, moderator: User, user: User) -> None:
    _, messages = conversation_with_turns(user, TURNS[:1])
    flag = make_flag(user=user, message=messages[1], direction=Flag.Direction.OUTPUT)

    assert decide(mod_client, flag, "delete", "harmful instructions").status_code == 302

    messages[1].refresh_from_db()
    assert (messages[1].content, messages[1].status) == (REMOVED_TEXT, Message.Status.BLOCKED)
    flag.refresh_from_db()
    assert flag.review_status == Flag.Review.CONFIRMED
    assert ModerationDecision.objects.filter(
        flag=flag, kind=ModerationDecision.Kind.DELETE_MESSAGE, reviewer=moderator, note="harmful instructions"
    ).exists()
    # A second delete is refused rather than logged twice.
    response = decide(mod_client, flag, "delete", "again")
    assert response.status_code == 200 and "already removed" in response.content.decode()


@pytest.mark.parametrize("note", ["", "   "])
def test_a_note_is_required(mod_client: Client, user: User, note: str) -> None:
    flag = make_flag(user=user)

    response = decide(mod_client, flag, "confirm", note)

    assert response.status_code == 200
    assert "note" in response.context["form"].errors
    flag.refresh_from_db()
    assert flag.review_status == Flag.Review.OPEN
    assert not ModerationDecision.objects.exists()


def test_a_get_never_decides(mod_client: Client, user: User) -> None:
    flag = make_flag(user=user)

    mod_client.get(review_url(flag), {"decision": "confirm", "note": "via a link"})

    flag.refresh_from_db()
    assert flag.review_status == Flag.Review.OPEN and not ModerationDecision.objects.exists()


def test_decisions_need_the_csrf_token(moderator: User, user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(moderator)
    flag = make_flag(user=user)

    assert decide(client, flag, "confirm").status_code == 403
    assert not ModerationDecision.objects.exists()


def test_staff_outside_the_moderators_group_are_refused(user: User) -> None:
    staff = User.objects.create_user(username="ops", is_staff=True)
    client = Client()
    client.force_login(staff)
    flag = make_flag(user=user)

    assert client.get(review_url(flag)).status_code == 403
    assert decide(client, flag, "confirm").status_code == 403
    assert client.get(reverse("admin:moderation_flag_dashboard")).status_code == 403
    flag.refresh_from_db()
    assert flag.review_status == Flag.Review.OPEN


def test_people_who_are_not_staff_are_sent_to_the_login(user: User) -> None:
    client = Client()
    client.force_login(user)
    flag = make_flag(user=user)

    response = client.get(review_url(flag))

    assert response.status_code == 302 and "login" in response["Location"]


def test_a_flag_page_is_read_only(mod_client: Client, user: User) -> None:
    flag = make_flag(user=user, excerpt="original evidence")
    url = reverse("admin:moderation_flag_change", args=[flag.pk])

    assert mod_client.get(url).status_code == 200
    mod_client.post(url, {"excerpt": "tampered", "review_status": "dismissed"})

    flag.refresh_from_db()
    assert (flag.excerpt, flag.review_status) == ("original evidence", Flag.Review.OPEN)


# --- Bulk actions --------------------------------------------------------------------------------------


def test_bulk_confirm_asks_for_a_note_then_confirms_open_flags(mod_client: Client, moderator: User, user: User) -> None:
    first, second = make_flag(user=user), make_flag(user=user)
    done = make_flag(user=user, status=Flag.Review.DISMISSED)
    url = reverse("admin:moderation_flag_changelist")
    selection = {"action": "confirm_selected", "_selected_action": [first.pk, second.pk, done.pk]}

    asked = mod_client.post(url, selection)
    assert asked.status_code == 200
    assert "admin/moderation/action_note.html" in [t.name for t in asked.templates]
    assert not ModerationDecision.objects.exists()

    blank = mod_client.post(url, {**selection, "post": "yes", "note": " "})
    assert blank.status_code == 200 and blank.context["form"].errors
    assert not ModerationDecision.objects.exists()

    response = mod_client.post(url, {**selection, "post": "yes", "note": "spam wave"})
    assert response.status_code == 302
    assert set(Flag.objects.filter(review_status=Flag.Review.CONFIRMED).values_list("pk", flat=True)) == {
        first.pk,
        second.pk,
    }
    done.refresh_from_db()
    assert done.review_status == Flag.Review.DISMISSED
    assert ModerationDecision.objects.filter(kind="confirm", reviewer=moderator, note="spam wave").count() == 2


def test_bulk_dismiss(mod_client: Client, moderator: User, user: User) -> None:
    flag = make_flag(user=user)
    url = reverse("admin:moderation_flag_changelist")

    mod_client.post(url, {"action": "dismiss_selected", "_selected_action": [flag.pk], "post": "yes", "note": "fp"})

    flag.refresh_from_db()
    assert (flag.review_status, flag.reviewer) == (Flag.Review.DISMISSED, moderator)


# --- Decisions log and suspensions ---------------------------------------------------------------------


def test_the_decision_log_is_read_only(mod_client: Client, moderator: User, user: User) -> None:
    flag = make_flag(user=user)
    decide(mod_client, flag, "confirm", "ok")
    recorded = ModerationDecision.objects.get()

    response = mod_client.get(reverse("admin:moderation_moderationdecision_changelist"), {"kind__exact": "confirm"})
    assert list(response.context["cl"].result_list) == [recorded]
    assert mod_client.get(reverse("admin:moderation_moderationdecision_add")).status_code == 403
    change_url = reverse("admin:moderation_moderationdecision_change", args=[recorded.pk])
    mod_client.post(change_url, {"note": "rewritten"})
    recorded.refresh_from_db()
    assert recorded.note == "ok"


def test_lifting_a_suspension_ends_it_and_records_why(mod_client: Client, moderator: User, user: User) -> None:
    decide(mod_client, make_flag(user=user), "suspend", "abuse")
    suspension = Suspension.objects.get(user=user)
    url = reverse("admin:moderation_suspension_changelist")

    response = mod_client.post(
        url, {"action": "lift_selected", "_selected_action": [suspension.pk], "post": "yes", "note": "appeal accepted"}
    )

    assert response.status_code == 302
    assert not user_is_suspended(user_id=user.pk)
    assert ModerationDecision.objects.filter(
        kind=ModerationDecision.Kind.UNSUSPEND_USER, subject_user=user, reviewer=moderator, note="appeal accepted"
    ).exists()
    ended = mod_client.get(url, {"status": "ended"}).context["cl"].result_list
    assert list(ended) == [suspension]


def test_a_suspension_added_in_the_admin_goes_through_the_service(
    mod_client: Client, moderator: User, user: User
) -> None:
    url = reverse("admin:moderation_suspension_add")

    response = mod_client.post(url, {"user": user.pk, "reason": "spam account"})

    assert response.status_code == 302
    assert user_is_suspended(user_id=user.pk)
    assert ModerationDecision.objects.filter(kind="suspend_user", subject_user=user, reviewer=moderator).exists()
    again = mod_client.post(url, {"user": user.pk, "reason": "twice"})
    assert again.status_code == 200 and "already suspended" in again.content.decode()


# --- Dashboard ---------------------------------------------------------------------------------------


def test_the_dashboard_counts_flags_per_category_and_day(mod_client: Client, user: User) -> None:
    now = timezone.now()

    def flag_on(days_ago: int, category: str, status: str = Flag.Review.OPEN) -> None:
        flag = make_flag(user=user, category=category, status=status)
        Flag.objects.filter(pk=flag.pk).update(created_at=now - timedelta(days=days_ago))

    flag_on(0, "toxicity")
    flag_on(0, "toxicity", Flag.Review.CONFIRMED)
    flag_on(0, "leakage")
    flag_on(3, "leakage", Flag.Review.DISMISSED)
    flag_on(40, "toxicity")  # outside the window

    response = mod_client.get(reverse("admin:moderation_flag_dashboard"))

    assert response.status_code == 200
    stats = response.context["stats"]
    assert stats.categories == ["leakage", "toxicity"]
    assert len(stats.rows) == 30
    today, three_days_ago = stats.rows[0], stats.rows[3]
    assert today.day == timezone.localdate()
    assert [count for count, _ in today.cells] == [1, 2]
    assert (today.total, today.open, today.reviewed) == (3, 2, 1)
    assert [count for count, _ in three_days_ago.cells] == [1, 0]
    assert (three_days_ago.total, three_days_ago.open, three_days_ago.reviewed) == (1, 0, 1)
    assert sum(row.total for row in stats.rows[1:3] + stats.rows[4:]) == 0
    assert (stats.category_totals, stats.total, stats.open, stats.reviewed) == ([2, 2], 4, 2, 2)
    assert (
        reverse("admin:moderation_flag_dashboard")
        in mod_client.get(reverse("admin:moderation_flag_changelist")).content.decode()
    )
