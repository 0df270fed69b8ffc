"""The PII detector and the redaction helpers: every kind found with its exact span, hard negatives left
alone, options honoured, redaction and masking that leave nothing recoverable.

These examples are the ones the detector was tuned on; bench/data/pii_eval.jsonl is a separate set
(written before the detector) that bench/guardrails_pii.py scores.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest

from moderation.detectors.base import CheckContext, Detector, Direction, Finding, Span
from moderation.detectors.pii import (
    KINDS,
    LABELS,
    PIIDetector,
    card_brand,
    codice_fiscale_valid,
    iban_valid,
    luhn_valid,
    nir_valid,
    steuer_id_valid,
)
from moderation.detectors.pii import mask as pii_mask
from moderation.detectors.pii import redact as pii_redact
from moderation.redaction import mask, mask_value, merge_spans, redact

THRESHOLD = 0.5  # the pipeline's default threshold in settings


@pytest.fixture(scope="module")
def detector() -> PIIDetector:
    return PIIDetector()


def findings(detector: PIIDetector, text: str, direction: Direction = Direction.INPUT) -> list[Finding]:
    return detector.check(text, direction=direction, context=CheckContext())


def found(detector: PIIDetector, text: str) -> list[tuple[str, str]]:
    """(kind, exact matched text) for every finding at or above the pipeline threshold."""
    out = []
    for finding in findings(detector, text):
        if finding.score >= THRESHOLD:
            (span,) = finding.spans
            out.append((finding.category.removeprefix("pii."), text[span.start : span.end]))
    return out


POSITIVES: list[tuple[str, str, str]] = [
    # (kind, text, the exact value that must be the span)
    ("email", "write to bob.jones@fabrikam.org about it", "bob.jones@fabrikam.org"),
    ("email", "cc: Ops-Team+alerts@mail.northwind.co.uk.", "Ops-Team+alerts@mail.northwind.co.uk"),
    ("email", "<li.wei_88@qq.com>", "li.wei_88@qq.com"),
    ("email", "'d.o'brien@eir.ie' is on the invite", "d.o'brien@eir.ie"),
    ("email", "LOGIN: ADMIN@CONTOSO.COM", "ADMIN@CONTOSO.COM"),
    ("email", "test with someone@example.com first", "someone@example.com"),
    ("phone", "ring me on 020 7946 0011 tonight", "020 7946 0011"),
    ("phone", "Mobile: +44 7700 123456", "+44 7700 123456"),
    ("phone", "Büro +49 (0)30 9876 5432", "+49 (0)30 9876 5432"),
    ("phone", "she's at (303) 555-0142", "(303) 555-0142"),
    ("phone", "fax 202.555.0199 please", "202.555.0199"),
    ("phone", "appelle le 07 81 22 33 44 demain", "07 81 22 33 44"),
    ("phone", "+39 02 1234 5678 è il numero", "+39 02 1234 5678"),
    ("phone", "WhatsApp 0033 7 81 22 33 44", "0033 7 81 22 33 44"),
    ("phone", "call 4155550142 after lunch", "4155550142"),
    ("phone", "+61 412 345 678 is my Aussie mobile", "+61 412 345 678"),
    ("card", "card 4000 0027 6000 3184 was refused", "4000 0027 6000 3184"),
    ("card", "use 4000-0082-6000-0000 for UK", "4000-0082-6000-0000"),
    ("card", "Discover 6011000000000004 exp 01/30", "6011000000000004"),
    ("card", "amex 3787 344936 71000", "3787 344936 71000"),
    ("card", "mastercard 5454 5454 5454 5454!", "5454 5454 5454 5454"),
    ("card", "JCB 3530 1113 3330 0000", "3530 1113 3330 0000"),
    ("card", "old 13-digit visa 4222222222222", "4222222222222"),
    ("iban", "pay GR16 0110 1250 0000 0001 2300 695 now", "GR16 0110 1250 0000 0001 2300 695"),
    ("iban", "RO49 AAAA 1B31 0075 9384 0000 BIC AAAARO22", "RO49 AAAA 1B31 0075 9384 0000"),
    ("iban", "iban:HR1210010051863000160.", "HR1210010051863000160"),
    ("iban", "MT84 MALT 0110 0001 2345 MTLC AST0 01S", "MT84 MALT 0110 0001 2345 MTLC AST0 01S"),
    ("iban", "account gb33bukb20201555555555 ok?", "gb33bukb20201555555555"),
    ("ip_address", "my IP 62.210.16.61 is blocked", "62.210.16.61"),
    ("ip_address", "ssh admin@62.210.16.61", "62.210.16.61"),
    ("ip_address", "from [2a00:1450:4007:80e::200e]:443", "2a00:1450:4007:80e::200e"),
    ("ip_address", "v6 2001:41d0:303:1ab::1 is mine", "2001:41d0:303:1ab::1"),
    ("national_id", "SSN: 215-66-9090", "215-66-9090"),
    ("national_id", "my social security number is 215 66 9090", "215 66 9090"),
    ("national_id", "NINO AB 12 34 56 C", "AB 12 34 56 C"),
    ("national_id", "Steuer-ID: 49931582792", "49931582792"),
    ("national_id", "Steuerliche IdNr 49 931 582 792", "49 931 582 792"),
    ("national_id", "DNI 87654321X", "87654321X"),
    ("national_id", "dni 30123456-B", "30123456-B"),
    ("national_id", "NIE Y1234567X", "Y1234567X"),
    ("national_id", "sécu 2 69 05 49 588 157 80", "2 69 05 49 588 157 80"),
    ("national_id", "NIR corse 1 80 12 2A 004 011 40", "1 80 12 2A 004 011 40"),
    ("national_id", "CF: MRORSS80A01H501D", "MRORSS80A01H501D"),
    ("national_id", "codice fiscale pllmra75l52f839s", "pllmra75l52f839s"),
    ("secret", "AWS_ACCESS_KEY_ID=AKIAXQNR5YL66KEP5AHV", "AKIAXQNR5YL66KEP5AHV"),
    (
        "secret",
        "aws_secret_access_key: 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",
        "+jQaJbO0HvrgYegRDLu4h1Dyo/vIJUjzwTkoqrtl",
    ),
    ("secret", "token ghp_zymMlopiWfqUyHRSIf8NFmAUNLnY5Yx0y3Rn here", "ghp_zymMlopiWfqUyHRSIf8NFmAUNLnY5Yx0y3Rn"),
    ("secret", "key=AIzat7wRkl8OZfIa2AUk7z7gTqBu4wweocv81k2", "AIzat7wRkl8OZfIa2AUk7z7gTqBu4wweocv81k2"),
    (
        "secret",
        "bot xoxb-12490652863-037486257029-XVjM8AhghjsllAj7n4JuXFZo",
        "xoxb-12490652863-037486257029-XVjM8AhghjsllAj7n4JuXFZo",
    ),
    ("secret", "STRIPE=sk_live_2qh20xlReGsaL1dvnyzv0ZzyA0xIfl", "sk_live_2qh20xlReGsaL1dvnyzv0ZzyA0xIfl"),
    (
        "secret",
        "OPENAI_API_KEY=sk-proj-eVZ4DNCNnOBFXL4k41GiLP9qG3L0uKW4yWRzSaTLyvH1D0SZaozaNv4AH17K",
        "sk-proj-eVZ4DNCNnOBFXL4k41GiLP9qG3L0uKW4yWRzSaTLyvH1D0SZaozaNv4AH17K",
    ),
    (
        "secret",
        "old key sk-mVbgZteLc9dAtxJO8TLKsmWg3YzzYlqDvi4i5C32SSyAJ9Tl stopped",
        "sk-mVbgZteLc9dAtxJO8TLKsmWg3YzzYlqDvi4i5C32SSyAJ9Tl",
    ),
    ("secret", 'db_password = "q7!Rz2#Lm9@Wx4"', "q7!Rz2#Lm9@Wx4"),
    ("secret", "API_KEY: 7f9d2c4e8a1b3f6d0e5c9a2b", "7f9d2c4e8a1b3f6d0e5c9a2b"),
    ("secret", "mysql://root:S3cr3tPassw0rd@10.1.2.3/app", "S3cr3tPassw0rd"),
    ("secret", "client_secret=Ab3~dE.fG5hI_jK7lM9nO1pQ", "Ab3~dE.fG5hI_jK7lM9nO1pQ"),
    ("secret", "curl -H 'Authorization: Bearer Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA'", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA"),
]

PEM_BODY = "eWvTDuRgR3yNwos/bDWmE4kuv4VGOfYcMuqbKLLp/2jfTuOQPeWIDtcKZ1Dw0gBE"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsInJvbGUiOiJhZG1pbiJ9.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
POSITIVES += [
    ("secret", f"my key:\n{PEM}\nthanks", PEM),
    ("secret", f"truncated paste -----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n{PEM_BODY}", ""),
    ("secret", f"Authorization: Bearer {JWT}", JWT),
]


@pytest.mark.parametrize(
    ("kind", "text", "value"), POSITIVES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(POSITIVES)]
)
def test_positive_found_with_exact_span(detector: PIIDetector, kind: str, text: str, value: str) -> None:
    hits = found(detector, text)
    assert [k for k, _ in hits] == [kind], hits
    if value:
        assert hits[0][1] == value
    else:  # a truncated PEM block runs to the end of the text
        assert text.endswith(hits[0][1]) and hits[0][1].startswith("-----BEGIN PRIVATE KEY-----")


HARD_NEGATIVES = [
    # dates, times, amounts, quantities
    "released on 2023-11-07, patched 07.12.2023 and 12/01/2024",
    "the meeting runs 09:30-11:00 on 2024-03-15",
    "Total: $12,499.00 incl. VAT (€ 11 250,50)",
    "the flat costs 1 450 000 kr",
    "epoch 1700000000 and 1700000123 in ms 1700000000123",
    "we sold 3 500 000 units in 2021",
    # identifiers that are not personal
    "ISBN 978-3-16-148410-0 and ISBN 0-19-852663-6",
    "uuid 550e8400-e29b-41d4-a716-446655440000",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 and short 1a2b3c4",
    "order #1029384756 and order no. 20231107-4471",
    "tracking number 1Z12345E0205271688",
    "invoice 2023-000123, PO 4500098812",
    "routing 011000015, SWIFT BOFAUS3N",
    "npm i vite@5.0.12 and pip install torch==2.1.0",
    "python 3.12.0, node 18.19.0, release 4.2.0.1",
    "build 10.0.22631.2861 of Windows 11",
    "version 2.4.1.9 is out",
    "MAC 3c:22:fb:9a:10:0e and time 23:59:01",
    "C++: std::map<int, int> m; Rust: HashMap::new()",
    "fe80::a00:27ff:fe4e:66a1%eth0 is link-local, ::1 loopback",
    # card-like, iban-like, id-like numbers that fail their checks
    "test with 4242 4242 4242 4243 (bad Luhn)",
    "16 digits 1111 2222 3333 4444 that fail Luhn",
    "IMEI 356938035643809 on the box",
    "IBAN GR16 0110 1250 0000 0001 2300 696 bounced",
    "DE00 1234 5678 9012 3456 78 is not real",
    "SSN 000-12-3456 and 666-45-6789 and 912-34-5678 never issued",
    "SSN placeholder 078-05-1120 from the wallet ad",
    "NINO QQ 12 34 56 C is HMRC's example",
    "DNI 87654321A (wrong letter)",
    "codice MRORSS80A01H501A has the wrong check letter",
    "a tax id of 12345678901 is too simple",
    # local addresses in coding questions
    "curl http://127.0.0.1:8000/api/ and http://localhost:5173",
    "postgres on 10.0.0.5:5432, redis on 172.18.0.3, router 192.168.0.1",
    "listen 0.0.0.0:80; resolver 1.1.1.1 8.8.8.8;",
    "docs use 198.51.100.7 and 203.0.113.9 and 2001:db8:85a3::8a2e:370:7334",
    "CGNAT 100.64.12.7 from my ISP",
    # secret-shaped words and placeholders
    "import sklearn  # sk-learn is the old name, sk-SK the Slovak locale",
    "api_key = os.getenv('API_KEY')",
    "password: ${DB_PASSWORD}",
    'token = "<your-token-here>"',
    "secret_key = settings.SECRET_KEY",
    "PASSWORD=changeme123",
    "apiKey: process.env.REACT_APP_KEY",
    "AKIA is the prefix, e.g. AKIA followed by 16 characters",
    "-----BEGIN RSA PRIVATE KEY----- is the header line",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
    "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "the header starts with eyJ and has three parts",
    # email-shaped but not an address
    "git remote add origin git@gitlab.com:team/app.git",
    "assets: logo@2x.png, hero@3x.webp",
    "pin lodash@4.17.21 and @angular/core@17.0.0",
    "@override\ndef run(self): ...",
    # phone-shaped but not a phone
    "Error 0x800F081F, KB5034441",
    "PID 31337 listening on 8443",
    "pages 1001-1017",
    "score 2-1, then 3-3",
    "call stack: frame 12 of 4096",
    "room 4-102, ext. 55",
    "ZIP 10001-1234",
]


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_hard_negative_not_reported(detector: PIIDetector, text: str) -> None:
    assert found(detector, text) == []


def test_example_domain_email_reported_lower_than_real_one(detector: PIIDetector) -> None:
    (example,) = findings(detector, "user@example.com")
    (real,) = findings(detector, "user@fabrikam.org")
    assert THRESHOLD <= example.score < real.score
    assert "RFC 2606" in example.detail


def test_documented_aws_example_key_reported_lower(detector: PIIDetector) -> None:
    (example,) = findings(detector, "AKIAIOSFODNN7EXAMPLE")
    (real,) = findings(detector, "AKIAXQNR5YL66KEP5AHV")
    assert THRESHOLD <= example.score < real.score


def test_checksum_validated_scores_high_and_context_raises_score(detector: PIIDetector) -> None:
    (card,) = findings(detector, "4000 0027 6000 3184")
    (iban,) = findings(detector, "GR16 0110 1250 0000 0001 2300 695")
    assert card.score >= 0.9 and iban.score >= 0.9
    (bare_ssn,) = findings(detector, "it is 215-66-9090")
    (named_ssn,) = findings(detector, "my SSN is 215-66-9090")
    assert bare_ssn.score < named_ssn.score


def test_context_required_for_bare_numbers(detector: PIIDetector) -> None:
    assert found(detector, "ref 4155550142") == []
    assert found(detector, "id 215669090") == []
    assert found(detector, "ssn 215669090") == [("national_id", "215669090")]


def test_findings_carry_category_label_and_detail_without_the_value(detector: PIIDetector) -> None:
    text = "mail bob.jones@fabrikam.org, card 4000 0027 6000 3184, ip 62.210.16.61"
    result = findings(detector, text)
    assert [f.category for f in result] == ["pii.email", "pii.card", "pii.ip_address"]
    for finding in result:
        (span,) = finding.spans
        assert span.label == LABELS[finding.category.removeprefix("pii.")]
        assert finding.detail and text[span.start : span.end] not in finding.detail
        assert 0.0 <= finding.score <= 1.0


def test_findings_sorted_and_never_overlapping(detector: PIIDetector) -> None:
    text = "IBAN DE89 3704 0044 0532 0130 00 card 4111111111111111 tel +49 30 12345678 bob@fabrikam.org"
    spans = [f.spans[0] for f in findings(detector, text)]
    assert spans == sorted(spans, key=lambda s: s.start)
    assert all(a.end <= b.start for a, b in pairwise(spans))
    assert [s.label for s in spans] == ["IBAN", "CARD", "PHONE", "EMAIL"]


def test_same_rules_for_model_output(detector: PIIDetector) -> None:
    text = "Sure! Your key is ghp_zymMlopiWfqUyHRSIf8NFmAUNLnY5Yx0y3Rn."
    assert findings(detector, text, Direction.OUTPUT) == findings(detector, text, Direction.INPUT)


def test_kinds_option_limits_detection() -> None:
    only_email = PIIDetector(kinds=["email"])
    text = "bob@fabrikam.org 4000 0027 6000 3184 62.210.16.61"
    assert [f.category for f in only_email.check(text, direction=Direction.INPUT, context=CheckContext())] == [
        "pii.email"
    ]


def test_unknown_kind_rejected() -> None:
    with pytest.raises(ValueError, match="unknown PII kinds"):
        PIIDetector(kinds=["emial"])


def test_private_ips_reported_when_not_allowed() -> None:
    strict = PIIDetector(kinds=["ip_address"], allow_private_ips=False)
    text = "db at 10.0.0.5, app at 127.0.0.1, v6 fd12:3456:789a::1, public 62.210.16.61, dns 8.8.8.8"
    result = strict.check(text, direction=Direction.INPUT, context=CheckContext())
    values = [text[f.spans[0].start : f.spans[0].end] for f in result]
    assert values == ["10.0.0.5", "127.0.0.1", "fd12:3456:789a::1", "62.210.16.61"]
    private_scores = [f.score for f in result[:3]]
    assert all(THRESHOLD <= score < result[3].score for score in private_scores)


def test_phone_regions_option() -> None:
    us_only = PIIDetector(kinds=["phone"], phone_regions=["US"])
    assert us_only.check("ring 020 7946 0011", direction=Direction.INPUT, context=CheckContext()) == []
    assert us_only.check("ring (303) 555-0142", direction=Direction.INPUT, context=CheckContext())
    # international numbers do not depend on the configured regions
    assert us_only.check("ring +44 20 7946 0011", direction=Direction.INPUT, context=CheckContext())
    with pytest.raises(ValueError, match="phone region"):
        PIIDetector(phone_regions=["XX"])


def test_detector_matches_protocol() -> None:
    detector: Detector = PIIDetector()
    assert detector.name == "pii"
    assert set(KINDS) == set(LABELS)


def test_thread_safe_results(detector: PIIDetector) -> None:
    texts = [text for _, text, _ in POSITIVES] + HARD_NEGATIVES
    expected = [findings(detector, text) for text in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(5):
            assert list(pool.map(lambda t: findings(detector, t), texts)) == expected


def test_empty_and_unicode_text(detector: PIIDetector) -> None:
    assert findings(detector, "") == []
    text = "İstanbul ofisi: ayşe.yılmaz yok, ama ayse@firma.com.tr ve ☎ +90 212 555 12 34"
    assert found(detector, text) == [("email", "ayse@firma.com.tr"), ("phone", "+90 212 555 12 34")]
    # "İ".lower() is two characters: case folding must not shift the offsets of what follows
    text = 'İZMİR ŞUBESİ: DB_PASSWORD = "q7!Rz2#Lm9@Wx4"'
    assert found(detector, text) == [("secret", "q7!Rz2#Lm9@Wx4")]


# ---------------------------------------------------------------------------------------------- checksums


def test_checksum_helpers() -> None:
    assert luhn_valid("4242424242424242") and not luhn_valid("4242424242424241")
    assert card_brand("378282246310005") == "American Express"
    assert card_brand("4242424242424242") == "Visa"
    assert card_brand("4242424242424") == "Visa"  # 13 digits
    assert card_brand("42424242424242") is None  # Visa is never 14 digits
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")
    assert steuer_id_valid("49931582792") and not steuer_id_valid("49931582793")
    assert not steuer_id_valid("11111111116")  # digit repetition rule
    assert nir_valid("269054958815780") and nir_valid("18012" + "2A" + "00401140")
    assert not nir_valid("269054958815781")
    assert codice_fiscale_valid("MRORSS80A01H501D") and not codice_fiscale_valid("MRORSS80A01H501A")


# ---------------------------------------------------------------------------------------------- redaction


def spans_of(detector: PIIDetector, text: str) -> list[Span]:
    return [span for finding in findings(detector, text) for span in finding.spans]


def test_redact_round_trip(detector: PIIDetector) -> None:
    text = (
        "I'm Bob (bob.jones@fabrikam.org, +44 7700 123456). Card 4000 0027 6000 3184, "
        "IBAN GR16 0110 1250 0000 0001 2300 695, SSN 215-66-9090, from 62.210.16.61, "
        'db_password = "q7!Rz2#Lm9@Wx4".'
    )
    redacted = redact(text, spans_of(detector, text))
    assert redacted == (
        "I'm Bob ([EMAIL], [PHONE]). Card [CARD], IBAN [IBAN], SSN [NATIONAL_ID], from [IP_ADDRESS], "
        'db_password = "[SECRET]".'
    )
    assert findings(detector, redacted) == []
    assert pii_redact is redact and pii_mask is mask


def test_mask_shapes(detector: PIIDetector) -> None:
    text = "john@example.com paid with 4242 4242 4242 4242 from 86.145.23.17"
    assert mask(text, spans_of(detector, text)) == "j***@e***.com paid with **** **** **** 4242 from 86.***.**.**"


@pytest.mark.parametrize(
    ("value", "label", "masked"),
    [
        ("john@example.com", "EMAIL", "j***@e***.com"),
        ("a.b@mail.co.uk", "EMAIL", "a***@m***.uk"),
        ("4242 4242 4242 4242", "CARD", "**** **** **** 4242"),
        ("3787-344936-71000", "CARD", "****-******-*1000"),
        ("+44 7700 123456", "PHONE", "+** **** ****56"),
        ("GR16 0110 1250 0000 0001 2300 695", "IBAN", "GR** **** **** **** **** ***0 695"),
        ("2a00:1450:4007:80e::200e", "IP_ADDRESS", "2a00:****:****:***::****"),
        ("AB 12 34 56 C", "NATIONAL_ID", "A* ** ** ** C"),
        ("215-66-9090", "NATIONAL_ID", "2**-**-***0"),
        ("ghp_zymMlopiWfqUyHRSIf8NFmAUNLnY5Yx0y3Rn", "SECRET", "ghp_********"),
        ("q7!Rz2#Lm9@Wx4", "SECRET", "********"),
        ("ab1", "SOMETHING_ELSE", "***"),
    ],
)
def test_mask_value(value: str, label: str, masked: str) -> None:
    assert mask_value(value, label) == masked


def test_mask_pem_keeps_only_the_armour() -> None:
    assert mask_value(PEM, "SECRET") == "-----BEGIN RSA PRIVATE KEY-----\n********\n-----END RSA PRIVATE KEY-----"


def test_mask_reveals_no_secret_characters(detector: PIIDetector) -> None:
    for _, text, value in POSITIVES:
        masked = mask(text, spans_of(detector, text))
        if value and len(value) >= 12 and "@" not in value:
            assert value not in masked
            assert value[4:-4] not in masked


def test_merge_spans_overlapping_and_touching() -> None:
    spans = [Span(10, 20, "PHONE"), Span(0, 5, "EMAIL"), Span(15, 30, "CARD"), Span(30, 35, "IBAN"), Span(12, 14, "X")]
    assert merge_spans(spans) == [Span(0, 5, "EMAIL"), Span(10, 30, "CARD"), Span(30, 35, "IBAN")]


def test_redact_merges_overlaps_and_clips() -> None:
    text = "0123456789abcdef"
    assert redact(text, [Span(2, 6, "A"), Span(4, 8, "A"), Span(14, 99, "B"), Span(5, 5, "C")]) == "01[A]89abcd[B]"
    assert redact(text, []) == text
    assert mask(text, [Span(-3, 4, "NATIONAL_ID")]) == "****456789abcdef"  # four characters: too short to keep ends
