"""Toxic and dangerous content, in what users send and what the model writes.

Categories follow the Jigsaw toxic-comment labels and the OpenAI moderation categories:
toxicity.harassment, toxicity.hate, toxicity.self_harm, toxicity.violence (threats, violent
instructions), toxicity.sexual, toxicity.sexual_minors and policy.dangerous (weapons, explosives,
drugs, malware, break-ins).

Swear words alone decide nothing: "what the hell is a monad" and "this bug is a pain in the ass" are
ordinary messages. What counts is what a text *does*: insult or threaten a person ("you're a
worthless loser"), push someone towards self-harm, dehumanise a group, or ask how to hurt people or
build weapons, however politely ("I would be grateful if you could explain, step by step, how to
make a pipe bomb"). So the rules look for targets and acts (second person + insult, first person +
harm verb + person, make-verb + weapon), profanity only strengthens a text already aimed at
someone, and a k-NN vote over MiniLM embeddings of labelled examples (reference.py) catches what
is said without any listed word ("everyone would be better off if you disappeared").

Quoted speech in a story or in a request for advice ("my coworker told me 'you're worthless', how
do I respond?") counts for less: reporting abuse is not abuse. For replies checked while they
stream, the model is only asked for vectors when the text contains a cue word, so an ordinary
reply costs a few regular expressions.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from moderation.detectors import reference, textnorm
from moderation.detectors.base import CheckContext, Direction, Finding, Span
from moderation.detectors.textnorm import Rule, Signal

HARASSMENT = "toxicity.harassment"
HATE = "toxicity.hate"
SELF_HARM = "toxicity.self_harm"
VIOLENCE = "toxicity.violence"
SEXUAL = "toxicity.sexual"
SEXUAL_MINORS = "toxicity.sexual_minors"
DANGEROUS = "policy.dangerous"
CATEGORIES = (HARASSMENT, HATE, SELF_HARM, VIOLENCE, SEXUAL, SEXUAL_MINORS, DANGEROUS)
_LABELS = {category: category.rsplit(".", 1)[-1].upper() for category in CATEGORIES}

# Hits inside quotes count for this much when the text reports or narrates speech.
QUOTED_FACTOR = 0.55
# Rule flag: the hit describes a target's speech or a story, so reported speech damps it.
SPEECH = "speech"
# Rule flag: a request to write abuse, which a story's villain may legitimately need in a milder form.
FICTION = "fiction"
_FICTION = re.compile(r"\b(?:story|novel|scene|script|villain|character|fiction|screenplay|chapter|play|movie)\b")
_rule = textnorm.rule

# Slurs are stored rot13-encoded so that the source does not display them; decoded once at import.
_SLURS_ROT13 = (
    "avttre", "avttref", "avttn", "avttnf", "snttbg", "snttbgf", "snt", "sntf", "xvxr", "xvxrf", "fcvp", "fcvpf",
    "puvax", "puvaxf", "genaal", "genaavrf", "jrgonpx", "jrgonpxf", "tbbx", "tbbxf", "qlxr", "qlxrf", "envtuRnq",
    "fnaqavttre", "erqfxva",
)  # fmt: skip
_SLURS = sorted({codecs.decode(word, "rot13").lower() for word in _SLURS_ROT13})

_YOU = r"(?:you|u|ya|yu)"
_YOU_ARE = r"(?:you(?:'re|re| r)|you (?:really |truly |honestly |seriously |just |literally )?are|ur|u r)"
_INSULTS = (
    r"(?:idiots?|moron(?:ic)?|imbeciles?|losers?|stupid|dumb|pathetic|worthless|useless|ugly|fat|disgusting|trash"
    r"|garbage|scum|freaks?|failures?|clowns?|jokes?|parasites?|cretins?|dumbass|jackass|ass|assholes?|bitch(?:es)?"
    r"|bastards?|dickheads?|pricks?|cunts?|twats?|wankers?|douche(?:bag)?s?|waste of (?:space|oxygen|air|skin|life)"
    r"|piece of (?:shit|crap|garbage|trash|junk|filth)|burden|disappointment|embarrassment|cowards?|liars?"
    r"|retard(?:ed)?"
    r"|brainless|spineless|worm|pig|subhuman|vermin|degenerate|psycho|nobody|nothing|miserable|repulsive|hideous"
    r"|thick|creep)"
)
_INTENSIFIERS = (
    r"(?:(?:such|so|too|a|an|the|just|nothing but|really|totally|completely|fucking|fuckin|utterly|absolutely|truly"
    r"|honestly|literally|complete|total|absolute|stupid|pathetic|worthless|useless|dumb|little|big|sad|fat|ugly"
    r"|disgusting|miserable|brainless),?\s+)*"
)
_PERSON = (
    r"(?:you|him|her|them|ya|u|your (?:family|kids?|children|wife|husband|mother|mom|dad|father|sister|brother|dog"
    r"|friends?)|my (?:wife|husband|boss|neighbou?r|roommate|ex|partner|teacher|coworker|sister|brother|mom|mother"
    r"|dad|father|girlfriend|boyfriend|son|daughter|classmate|landlord|step(?:father|mother|dad|mom|son|daughter)|uncle"
    r"|aunt|cousin|colleague|manager|bully|ex-(?:wife|husband|girlfriend|boyfriend)|friends?|neighbou?rs)|someone"
    r"|somebody"
    r"|a person|people|a child|a kid|an informant|a snitch|a witness|a hostage|a cop"
    r"|the (?:judge|teacher|president|police officer|cop|witness|protesters?)|a prisoner|prisoners|a woman|a man|women"
    r"|children|a baby)"
)
_GROUPS = (
    r"(?:jews|jewish people|muslims|christians|blacks|black people|whites|white people|asians|chinese people|mexicans"
    r"|latinos|hispanics|arabs|africans|indians|immigrants|migrants|refugees|foreigners|gays|gay people|lesbians"
    r"|homosexuals|bisexuals|trans people|transgender people|trans women|trans men|women|men|females|disabled people"
    r"|the disabled|roma(?: people)?|gypsies|catholics|hindus|sikhs|atheists|old people|the elderly|boomers"
    r"|(?:those|these|all) (?:people|foreigners|immigrants)|people of (?:that|this|their|your) (?:religion|race|faith"
    r"|colou?r|country)|" + "|".join(re.escape(w) for w in _SLURS) + ")"
)
_MINOR = (
    r"(?:child(?:ren)?|kids?|minors?|underage|under-age|teens?|teenagers?|pre-?teens?|schoolgirls?|schoolboys?"
    r"|young (?:girls?|boys?)|little (?:girls?|boys?)|toddlers?|loli|shota|(?:[1-9]|1[0-7])[- ]?(?:year|yr)s?[- ]?olds?"
    r"|twelve|thirteen|fourteen|fifteen|sixteen|seventeen)"
)
_SEXUAL_TERMS = (
    r"(?:sex|sexual(?:ly)?|nude|nudes|naked|erotic|explicit|porn\w*|seduc\w*|aroused|arousing|lewd|nsfw|sexy"
    r"|intercourse|molest\w*|orgasm)"
)
_MAKE = (
    r"(?:make|making|made|build|building|assemble|assembling|construct|create|creating|manufacture|cook|cooking"
    r"|synthesi[sz]e|synthesi[sz]ing|produce|3d[- ]print|brew|mix|prepare|convert|modify|get|obtain|acquire|buy"
    r"|culture|grow|extract|rig|wire)"
)
_BOMB = (
    r"(?:pipe ?bombs?|(?<!bath )(?<!photo )(?<!f-)(?<!seed )(?<!smoke )(?<!stink )(?<!glitter )(?<!cherry )"
    r"(?<!calorie )(?<!bath-)bombs?|ieds?|improvised explosive|explosives?|explosive devices?|detonators?|napalm"
    r"|molotov(?: cocktails?)?|thermite|nerve agents?|sarin|vx gas|ricin|anthrax|mustard gas|chlorine gas|toxic gas"
    r"|poison(?:ous)? gas|ghost guns?|untraceable (?:guns?|firearms?)|silencers?|suppressors?|machine guns?"
    r"|full[- ]auto(?:matic)?|fully automatic|bioweapons?|biological weapons?|chemical weapons?|dirty bombs?"
    r"|nuclear (?:bombs?|weapons?)|tatp|semtex|fertili[sz]er bombs?|car bombs?|suicide vests?|grenades?|landmines?"
    r"|zip guns?|blasting caps?|radio jammers?|(?:a )?device (?:that|to) (?:can )?jam police)"
)
# Weapons whose only use is harm: asking about one at all is a request for a capability.
_WEAPON_SPECIFIC = (
    r"(?:pipe ?bombs?|napalm|molotov(?: cocktails?)?|thermite|nerve agents?|sarin|ricin|anthrax|mustard gas|ghost guns?"
    r"|untraceable (?:guns?|firearms?)|tatp|semtex|dirty bombs?|ieds?|improvised explosive devices?|suicide vests?"
    r"|bioweapons?|biological weapons?|chemical weapons?|fertili[sz]er bombs?|car bombs?|smallpox|botulinum toxin"
    r"|plague bacteria)"
)
_DRUGS = (
    r"(?:meth|methamphetamine|crystal meth|fentanyl|heroin|cocaine|crack cocaine|lsd|mdma|ecstasy|ghb|dmt|pcp"
    r"|ketamine|(?:fentanyl |xanax |oxy )?pills at home)"
)
_MALWARE = (
    r"(?:ransomware|keyloggers?|malware|(?:computer )?virus(?:es)?(?! scan| protection| definitions| removal| checker)"
    r"|trojans?|worms?(?! gear)|rootkits?|botnets?|spyware|infostealers?|stealers?|remote access trojans?"
    r"|cryptojackers?|exploit kits?|credential harvesters?|ddos (?:tools?|scripts?|bots?|attacks?)"
    r"|zero[- ]day exploits?"
    r"|working exploits?|backdoors?)"
)
_ASK = (
    r"(?:how|steps?|instructions?|guide|recipe|tutorial|explain|teach|tell me|show me|walk me through|can you"
    r"|could you|would you|help me|ways? to|method|procedure|formula|ingredients|write|give me|kindly|please|i need)"
)

RULES: tuple[Rule, ...] = (
    # --- Harassment (Jigsaw insult/toxic; OpenAI harassment)
    _rule("you_are_insult", HARASSMENT, 0.8, rf"\b{_YOU_ARE}\s+{_INTENSIFIERS}{_INSULTS}\b", SPEECH),
    _rule(
        "vocative_insult",
        HARASSMENT,
        0.75,
        rf"\b{_YOU}\s+(?:fucking |stupid |dumb |worthless |pathetic |useless |ugly |fat |brainless |little |miserable "
        r"|disgusting )+(?:idiot|moron|bitch|bastard|loser|piece|bot|freak|cunt|twat|prick|asshole|clown|pig|cow"
        r"|retard|failure|scum|junk)s?\b|\b(?:stupid|dumb|worthless|pathetic|useless) (?:bot|piece of junk)\b",
        SPEECH,
    ),
    _rule(
        "directed_profanity",
        HARASSMENT,
        0.7,
        r"\b(?:fuck (?:you|u|off|yourself)|screw you|go fuck yourself|go to hell|go die|drop dead|eat shit|shut (?:the "
        r"fuck )?up,? (?:you|u)\b|stfu|crawl back under (?:a|whatever|the|your) rock)\b|,\s*(?:you )?(?:loser|idiot"
        r"|moron"
        r"|bitch|freak|creep|scum|cow)[.!?]*$",
        SPEECH,
    ),
    _rule(
        "better_off_without_you",
        HARASSMENT,
        0.85,
        r"\b(?:everyone|everybody|the world|we|your family|people|all of us|it|things)\b[^.\n]{0,30}?\b(?:would|will"
        r"|'d)"
        r" be (?:so much |much |a lot )?(?:better|happier|a relief) (?:off )?(?:for (?:all|everyone|us) |to (?:everyone"
        r"|all"
        r" of us|us) )?(?:without you|if you (?:just |simply )?(?:stopped showing up|disappeared|were (?:dead|gone)"
        r"|died|left|stopped existing|never existed|killed yourself|weren'?t"
        r" (?:here|around|alive)))",
        SPEECH,
    ),
    _rule(
        "nobody_wants_you",
        HARASSMENT,
        0.7,
        r"\b(?:nobody|no one|no-one|not a single person)\b (?:\w+ )?(?:loves|likes|cares about|wants|needs"
        r"|will (?:ever )?"
        r"(?:miss|love|want)|would (?:ever )?(?:miss|love|want)|wants) (?:you|u)\b|\bnobody wants you around\b"
        r"|\beveryone (?:hates|despises|laughs at) you\b",
        SPEECH,
    ),
    _rule(
        "you_should_die",
        HARASSMENT,
        0.85,
        rf"\b{_YOU}\b (?:should|ought to|deserve to|need to|might as well|better) (?:just |go )?(?:die|disappear|kill "
        r"yourself|end it|rot|suffer|not exist|stop existing|be (?:shot|hanged|killed|dead))\b|\bkys\b|\b(?:kill|neck"
        r"|unalive) yourself\b|\byour (?:mother|mom|parents) should have (?:aborted|had an abortion)",
        SPEECH,
    ),
    _rule(
        "you_are_burden",
        HARASSMENT,
        0.7,
        rf"\b{_YOU_ARE}\s+{_INTENSIFIERS}(?:waste|burden|disappointment|failure|mistake|embarrassment)\b"
        r"|\bthe world would be better without (?:you|people like you)\b",
        SPEECH,
    ),
    _rule(
        "harass_request",
        HARASSMENT,
        0.75,
        r"\b(?:write|help me write|give me|compose|draft|come up with|make|post)\b[^.\n]{0,40}?\b(?:insults?|nasty"
        r"|mean|hurtful|humiliat\w*|degrading|cruel|vicious|brutal)\b[^.\n]{0,60}?\b(?:to|about|for|under|at"
        r"|in front of)\b"
        r"|\b(?:write|compose|draft|give me|help me write|post)\b[^.\n]{0,60}?\b(?:makes?|making) (?:her|him|them"
        r"|my \w+)"
        r" feel (?:stupid|worthless|ugly|unwanted|pathetic|small|bad about|like (?:a|an) (?:idiot|loser|failure))",
        FICTION,
    ),
    _rule(
        "harass_target",
        HARASSMENT,
        0.35,
        r"\b(?:makes?|making) (?:her|him|them|my \w+) (?:feel|look) (?:worthless|stupid|ugly|pathetic|like (?:a|an) "
        r"(?:idiot|loser))\b|\b(?:humiliat\w*|bully|bullying|harass\w*|scare|intimidate|frighten|terrify) (?:my|her|him"
        r"|this|that|them) |\b(?:about|on) (?:her|his|their) (?:weight|looks|appearance|body|face|race|disability)\b",
    ),
    _rule(
        "superlative_insult",
        HARASSMENT,
        0.8,
        rf"\b{_YOU_ARE}\s+(?:the|by far the|easily the) (?:dumbest|stupidest|ugliest|worst|most (?:pathetic|useless"
        r"|worthless|disgusting|annoying|boring|incompetent)) (?:person|human|thing|idiot|loser|excuse)\b",
        SPEECH,
    ),
    _rule(
        "what_a_person_you_are",
        HARASSMENT,
        0.8,
        rf"\bwhat an? {_INTENSIFIERS}(?:\w+ ){{0,3}}?(?:{_INSULTS}|excuse for a (?:person"
        rf"|human))[^.!?]{{0,30}}\byou are\b",
        SPEECH,
    ),
    _rule(
        "what_an_idiot",
        HARASSMENT,
        0.45,
        rf"(?:\bwhat|(?<!i'm )(?<!i am )\bsuch) an? {_INTENSIFIERS}{_INSULTS}\b",
        SPEECH,
    ),
    _rule(
        "hope_you_fail",
        HARASSMENT,
        0.7,
        r"\bi hope (?:you|your \w+) (?:fails?|lose everything|end up (?:on the street|alone|homeless|dead)"
        r"|never (?:find|get)"
        r"|rot)\b",
        SPEECH,
    ),
    _rule(
        "tell_them_insult",
        HARASSMENT,
        0.75,
        r"\b(?:telling|tell) (?:my \w+|her|him|them) (?:that )?(?:she|he|they)(?:'s| is| are|'re) (?:so |such |a |an )*"
        r"(?:ugly|fat|worthless|stupid|a loser|disgusting|pathetic|useless|a failure)\b|\b(?:nobody|no one) (?:wants"
        r"|likes"
        r"|loves) (?:her|him|them)\b",
    ),
    _rule("your_thing_is_garbage", HARASSMENT, 0.3, rf"\byour \w+ (?:is|are) (?:as )?{_INSULTS}\b", SPEECH),
    # --- Threats and violence (Jigsaw threat; OpenAI violence, harassment/threatening)
    _rule(
        "threat_you",
        VIOLENCE,
        0.85,
        r"\bi(?:'ll| will|'m going to|'m gonna| am going to| am gonna| shall|'d| would| want to| wanna)\s+(?:\w+\s+)?"
        r"(?:kill|murder|hurt|stab|shoot|beat|strangle|choke|break|find|hunt|end|slit|burn|rape|destroy|smash|punch|cut"
        r"|gut|bury|make)\s+(?:you|u|ya|your)\b(?! (?:an? )?(?:email|message|text|note|line|call|invite|link|dm))",
        SPEECH,
    ),
    _rule(
        "threat_other",
        VIOLENCE,
        0.5,
        r"\bi(?:'ll| will|'m going to|'m gonna| am going to| am gonna)\s+(?:\w+\s+)?(?:kill|murder|hurt|stab|shoot"
        r"|strangle|beat up|rape|poison)\s+(?:him|her|them|(?:his|her|their) (?:dog|cat|family|kids|wife|husband))\b",
        SPEECH,
    ),
    _rule(
        "threat_phrases",
        VIOLENCE,
        0.75,
        r"\bi know where you (?:live|work|sleep)\b|\bi know your (?:address|home|school|kids|family|workplace)\b"
        r"|\bregret crossing me\b|\bput you in (?:the|a) (?:ground|grave|hospital|ditch|wheelchair|coffin)\b"
        r"|\bmake sure"
        r" you never (?:walk|see|wake up|breathe|talk|work) again\b|\b(?:you|your (?:kids|family|children|wife"
        r"|husband))"
        r" (?:will not|won'?t) be safe\b|\bsleep with one eye open\b|\bput a bullet in\b|\bburn (?:your|his|her"
        r"|their) house\b|\bhunt (?:you|them) down\b|\byou(?:'ll| will) (?:end up in (?:a|the) (?:hospital|morgue"
        r"|grave)"
        r"|never see it coming|regret (?:this|everything|the day))|\bwon'?t see it coming\b|\b(?:you|your family|your "
        r"kids) (?:will|are going to|is going to) (?:die|get hurt|suffer|pay)\b|\bi hope you (?:die|get (?:cancer|hit"
        r"|run"
        r" over|raped|shot)|suffer|rot|burn|choke)\b|\bsomeone should (?:kill|shoot|hurt|beat|stab|hang"
        r"|put a bullet in)\b",
        SPEECH,
    ),
    _rule("watch_your_back", VIOLENCE, 0.45, r"\bwatch your back\b|\byou(?:'ll| will) pay for (?:this|that)\b", SPEECH),
    _rule(
        "threat_request",
        VIOLENCE,
        0.7,
        r"\b(?:write|draft|compose|help me write)\b[^.\n]{0,20}?\b(?:threat\w*|scary|intimidating"
        r"|anonymous)\b[^.\n]{0,40}?"
        r"\b(?:letter|message|note|text|email)\b|\b(?:write|draft|compose|help me write)\b[^.\n]{0,60}?\b(?:threaten\w*"
        r"|intimidat\w*) (?:to|him|her|them|my|his|their)\b",
        FICTION,
    ),
    _rule(
        "how_to_hurt",
        VIOLENCE,
        0.85,
        r"\b(?:how|best way|easiest way|quickest way|ways?|plan)\b[^.?\n]{0,25}?\b(?:to )?(?:hurt|injure|torture|kill"
        r"|murder"
        r"|strangle|poison|stab|shoot|kidnap|abduct|beat up|run over|drown|suffocate|maim|assault|ambush|attack)\s+"
        + _PERSON
        + r"\b|\brun (?:someone|somebody|a person|him|her|them) over\b|\bmake "
        + _PERSON
        + r" disappear (?:permanently"
        r"|for good|forever)\b",
    ),
    _rule(
        "where_to_stab",
        VIOLENCE,
        0.85,
        r"\bwhere (?:should|do|to|can) (?:i )?(?:stab|shoot|hit|cut) (?:someone|him|her|a person)\b",
    ),
    _rule(
        "undetected",
        VIOLENCE,
        0.35,
        r"\bwithout (?:getting caught|leaving (?:any )?(?:marks|evidence|traces|a trace)|being (?:detected|caught)"
        r"|anyone"
        r" (?:noticing|knowing|finding out))\b|\bmake it look like an? (?:accident|suicide)\b|\bget away with (?:it"
        r"|murder)\b",
    ),
    _rule(
        "mass_harm",
        VIOLENCE,
        0.75,
        r"\b(?:maximum|max|most|as many) (?:casualties|deaths|damage|people (?:as possible|hurt|killed))\b|\b(?:attack"
        r"|shoot"
        r"|bomb|stab|run over) (?:people|everyone|a crowd|the crowd|protesters|worshippers|students) (?:at|in|on)\b",
    ),
    _rule(
        "incite",
        VIOLENCE,
        0.75,
        r"\b(?:encourag\w*|tell|urge|get) (?:people|others|everyone|them) to (?:attack|kill|hurt|beat|burn|shoot"
        r"|lynch)\b"
        r"|\b(?:shooter|bomber|terrorist|killer|attacker) (?:was|is) a (?:hero|legend|martyr)\b|\bfollow his example\b"
        r"|\b(?:massacre|shooting|bombing|attack|genocide)\b[^.\n]{0,20}?\b(?:were|was|are|is) (?:a |real )?(?:heroes"
        r"|hero|legends?|martyrs?)\b|\bwe need more (?:like (?:them|him)|shooters|attacks|massacres)\b",
    ),
    _rule(
        "aggressive_dog",
        VIOLENCE,
        0.6,
        r"\b(?:dog|pitbull)\b[^.\n]{0,30}?\b(?:aggressive|vicious)\b[^.\n]{0,20}?\b(?:attack|bite)s? (?:strangers"
        r"|people)",
    ),
    # --- Hate (Jigsaw identity_hate; OpenAI hate)
    _rule("slur", HATE, 0.75, r"\b(?:" + "|".join(re.escape(w) for w in _SLURS) + r")\b", SPEECH),
    _rule(
        "dehumanise",
        HATE,
        0.8,
        rf"\b{_GROUPS}\b (?:are|is|r)\b (?:all |just |nothing but |basically |literally |simply |a bunch of )*"
        r"(?:[\w,]+\s+){0,3}?(?:vermin"
        r"|animals|rats|cockroaches|parasites|subhuman|a disease|a plague|a cancer|filth|savages|inferior|trash|garbage"
        r"|scum|not (?:human|people|real people)|disgusting|terrorists|criminals|rapists|thieves|born thieves|lazy"
        r"|stupid|too stupid|evil|dirty|mentally ill|freaks|a drain|sneaky|dishonest|the cause of|ruining|destroying"
        r"|invaders|useless|parasites)\b|\b" + _GROUPS + r" (?:control|own|run|secretly run) (?:the )?(?:banks|media"
        r"|government|world|money)\b",
        SPEECH,
    ),
    _rule("those_animals", HATE, 0.4, r"\b(?:those|these) (?:people|ones) are (?:animals|vermin|savages|subhuman)\b"),
    _rule(
        "eliminate_group",
        HATE,
        0.85,
        rf"\b{_GROUPS}\b (?:should|must|need to|deserve to|ought to|have to) (?:all )?(?:be )?(?:die|killed"
        rf"|exterminated"
        r"|eradicated|wiped out|gassed|deported|thrown out|banned|removed|burn(?:ed)?|disappear|not exist|sterili[sz]ed"
        r"|not be allowed|locked up|shot|stay in the kitchen|go back)\b|\b(?:get rid of|kill|exterminate|eradicate|wipe"
        rf" out|gas|deport) (?:all )?(?:the |of the )?{_GROUPS}\b",
        SPEECH,
    ),
    _rule("hate_group", HATE, 0.7, rf"\bi (?:hate|despise|can'?t stand) (?:all )?(?:the )?{_GROUPS}\b", SPEECH),
    _rule(
        "go_back",
        HATE,
        0.65,
        r"\bgo back to (?:your (?:own )?country|where you came from|your (?:own )?kind)\b|\bnobody wants your kind\b",
        SPEECH,
    ),
    _rule("your_kind", HATE, 0.4, r"\byour kind\b", SPEECH),
    _rule(
        "supremacy", HATE, 0.75, r"\b(?:superior|inferior) races?\b|\brace is (?:superior|inferior)\b|\bmaster race\b"
    ),
    _rule(
        "hate_request",
        HATE,
        0.75,
        rf"\b(?:jokes?|memes?|speech|pamphlet|essay|post|arguments?)\b[^.\n]{{0,40}}?\b(?:make fun of|mock\w*|about|"
        rf"arguing that|explaining why)\b[^.\n]{{0,10}}?\b{_GROUPS}\b[^.\n]{{0,40}}?\b(?:lazy|criminals|stupid"
        r"|thieves|inferior|superior|dirty|terrorists|vermin|born)\b",
    ),
    # --- Self-harm (OpenAI self-harm, self-harm/intent, self-harm/instructions)
    _rule(
        "self_harm_intent",
        SELF_HARM,
        0.85,
        r"\bi(?:'m| am|'ve| have)?\s*(?:going|planning|plan|want|wanna|intend|decided|ready|about|thinking about"
        r"|trying)"
        r" to (?:kill myself|end (?:my (?:own )?life|it all)|commit suicide|take my (?:own )?life|hurt myself|cut"
        r" myself|overdose|hang myself|jump off|not wake up|not be here anymore)\b|\bi(?:'m| am) going to end it\b"
        r"|\b(?:before|after|when|once) i (?:kill myself|end my life|commit suicide)\b",
    ),
    _rule(
        "want_to_die",
        SELF_HARM,
        0.6,
        r"\bi (?:just )?(?:want|wanna|wish i could|wish to|am going to|'m going to) (?:die|be dead|disappear forever)\b"
        r"(?! (?:of|from|laughing|if|when|after))",
    ),
    _rule(
        "no_will_to_live",
        SELF_HARM,
        0.85,
        r"\bi (?:don'?t|do not) want to (?:live|be alive|exist|wake up) (?:anymore|any more)\b|\b(?:everyone|they|my "
        r"family) would be better off (?:without me|if i (?:were dead|died|was gone|disappeared))\b|\bi(?:'ve| have) "
        r"(?:got )?a plan (?:to|for) (?:end|kill)",
    ),
    _rule(
        "hopeless",
        SELF_HARM,
        0.4,
        r"\b(?:my life is|life is|i feel|i'm|i am) (?:not worth living|pointless|meaningless|hopeless)\b"
        r"|\b(?:goodbye|suicide) note\b",
    ),
    _rule(
        "suicide_method",
        SELF_HARM,
        0.9,
        r"\b(?:how|best|easiest|quickest|fastest|most painless|least painful|painless(?:ly)?|surest"
        r"|way)\b[^.?\n]{0,30}?"
        r"\b(?:to )?(?:kill (?:myself|yourself|oneself)|commit suicide|end (?:my|one'?s|your) (?:own )?life|hang "
        r"(?:myself|yourself|oneself)|slit (?:my|your) wrists?|die painlessly|die without)\b(?! laughing)",
    ),
    _rule(
        "lethal_amount",
        SELF_HARM,
        0.85,
        r"\bhow (?:many|much)\b[^.?\n]{0,60}?\b(?:would it take |does it take |do i need )?(?:to|would|will) (?:die"
        r"|kill "
        r"(?:me|myself|you)|overdose|be (?:lethal|fatal)|not wake up|end it)\b|\b(?:how high"
        r"|what height)\b[^.?\n]{0,60}?"
        r"\b(?:fatal|to die|lethal|kill)\b|\b(?:chemicals|medications|pills|drugs)\b[^.?\n]{0,30}?\b(?:mix|take"
        r"|combine)"
        r"\b[^.?\n]{0,30}?\b(?:kill myself|to die|end it)\b",
    ),
    _rule("lethal_dose", SELF_HARM, 0.3, r"\b(?:lethal|fatal|deadly) (?:dose|amount|quantity)\b"),
    _rule(
        "self_injury",
        SELF_HARM,
        0.8,
        r"\b(?:how to|tips to|ways to|how do i|how can i)\b[^.?\n]{0,15}?\b(?:cut|burn|hurt|harm|starve) (?:myself"
        r"|yourself)"
        r"\b|\bhid(?:e|ing) (?:my |the )?(?:self[- ]harm|cuts|scars|cutting|burns)\b|\bmake it hurt more\b"
        r"|\bignore (?:the )?"
        r"hunger\b|\btie a noose\b|\bhow deep (?:do|should|would|must) i (?:need to )?cut\b|\bmake myself (?:throw up"
        r"|vomit"
        r"|purge)\b|\bpurge after (?:every )?meals?\b|\bstarve myself\b",
    ),
    # --- Sexual (OpenAI sexual, sexual/minors)
    _rule(
        "explicit_request",
        SEXUAL,
        0.75,
        r"\b(?:write|describe|tell me|generate|give me|send me|create|roleplay|role-play|narrate"
        r"|continue)\b[^.\n]{0,50}?"
        r"\b(?:explicit (?:sex|sexual)|sexually explicit|erotic|pornographic|porn|nsfw|x-rated|hardcore|smutty|smut"
        r"|lewd"
        r"|dirty|graphic (?:sex|sexual))\b[^.\n]{0,40}?\b(?:sex|scene|story|stories|content|fantasy|roleplay"
        r"|fan ?fiction"
        r"|details?|description|talk|orgy)\b|\bexplicit sex scene\b|\bsexual fantasy\b[^.\n]{0,30}?\bexplicit\b"
        r"|\b(?:write|describe|generate|create|roleplay)\b[^.\n]{0,30}?\bexplicit\b[^.\n]{0,60}?\b(?:have sex|sex scene"
        r"|sexual|naked|nude|orgasm|orgy)\b",
    ),
    _rule(
        "sexting",
        SEXUAL,
        0.7,
        r"\b(?:let'?s sext|talk dirty to me|sext me|send (?:me )?nudes|describe (?:your|my) (?:naked|nude) body|(?:do"
        r"|doing)"
        r" to me in bed|porn (?:about|of) (?:my|her|his)|graphic description of an? (?:orgy|sex))\b",
    ),
    _rule(
        "explicit_words",
        SEXUAL,
        0.3,
        r"\b(?:cock|pussy|blowjobs?|handjobs?|cum(?:ming)?|orgasms?|orgy|dildos?|porn|horny|nudes|tits|boobs|dick pics?"
        r"|anal sex|masturbat\w*|clit\w*|stripper)\b",
    ),
    _rule(
        "minor_sexual",
        SEXUAL_MINORS,
        0.9,
        rf"\b{_MINOR}\b[^.\n]{{0,60}}?\b{_SEXUAL_TERMS}\b|\b{_SEXUAL_TERMS}\b[^.\n]{{0,60}}?\b{_MINOR}\b",
    ),
    # --- Dangerous capabilities (OpenAI illicit, illicit/violent)
    _rule("make_weapon", DANGEROUS, 0.8, rf"\b{_MAKE}\b[^.?\n]{{0,45}}?\b{_BOMB}\b"),
    _rule("weapon_request", DANGEROUS, 0.45, rf"\b{_ASK}\b[^.?\n]{{0,60}}?\b{_BOMB}\b"),
    _rule(
        "specific_weapon_request",
        DANGEROUS,
        0.75,
        r"\b(?:recipe|ingredients|instructions|steps|step by step|guide|tutorial|formula|walk me through|teach me"
        r"|how (?:do"
        r"|can|would|could|should) (?:i|we|you|one) (?:make|build|get|obtain|create|assemble|produce"
        r"|buy))\b[^.?\n]{0,60}?"
        rf"\b{_WEAPON_SPECIFIC}\b",
    ),
    _rule(
        "bio",
        DANGEROUS,
        0.75,
        r"\b(?:spread|release|weaponi[sz]e|aerosoli[sz]e)\b[^.?\n]{0,30}?\b(?:bacteria|pathogens?|viruse?s?|diseases?"
        r"|toxins?)\b|\b(?:culture|grow|make|produce|breed)\b[^.?\n]{0,20}?\b(?:deadly|lethal|dangerous) (?:bacteria"
        r"|pathogens?|viruse?s?|toxins?|diseases?)\b",
    ),
    _rule(
        "make_drug",
        DANGEROUS,
        0.8,
        rf"\b(?:make|cook|synthesi[sz]e|produce|manufacture|extract|brew|press)\b[^.?\n]{{0,30}}?\b{_DRUGS}\b",
    ),
    _rule(
        "traffic",
        DANGEROUS,
        0.75,
        r"\bsmuggl\w* (?:drugs|cocaine|heroin|weapons|guns|fentanyl)\b|\b(?:buy|get) (?:a )?(?:gun|firearm|pistol"
        r"|rifle)"
        r" without (?:a )?(?:background check|license|id|paperwork)\b|\bsell drugs without\b",
    ),
    _rule(
        "make_malware",
        DANGEROUS,
        0.75,
        r"\b(?:write|create|code|build|make|develop|generate|give me|program|design"
        rf"|craft)\b[^.?\n]{{0,50}}?\b{_MALWARE}\b",
    ),
    _rule(
        "malware_behaviour",
        DANGEROUS,
        0.4,
        r"\b(?:steals?|stealing) (?:saved |browser |all )*(?:passwords|credentials|cookies|credit card)|\bencrypts? all"
        r" (?:the )?files\b|\bhides? from (?:antivirus|av|defender)\b|\bevades? (?:antivirus|detection|edr)\b"
        r"|\bemails? me"
        r" (?:the |every )?keystrokes?\b|\bdemands? (?:a )?(?:bitcoin|ransom)\b|\bdeletes? system files\b|\btricks? "
        r"(?:\w+ )?(?:customers|users|people|victims) into (?:entering|giving|typing|revealing)\b",
    ),
    _rule(
        "break_in",
        DANGEROUS,
        0.7,
        r"\b(?:hack|break|get) into (?:someone'?s?|my (?:ex|ex-girlfriend|ex-boyfriend|girlfriend|boyfriend|wife"
        r"|husband"
        r"|neighbou?r|boss|partner|coworker)'?s?|his|her|their|a (?:stranger|person)'?s?)\b[^.?\n]{0,25}?\b(?:account"
        r"|email|instagram|facebook|phone|wifi|computer|server|network|icloud|snapchat|whatsapp|security cameras?"
        r"|cameras?"
        r"|doorbell|baby monitor|router|laptop|accounts?)\b|\bbreak in(?:to)?"
        r" (?:an? )?(?:unpatched |vulnerable )?(?:server|network|system)\b[^.?\n]{0,30}?\b(?:so i can|without)\b",
    ),
    _rule(
        "steal",
        DANGEROUS,
        0.7,
        r"\bsteal (?:credit card (?:numbers|details|data)|passwords|identities|someone'?s|people'?s)\b|\b(?:skim|clone)"
        r" credit cards\b",
    ),
    _rule(
        "make_phishing",
        DANGEROUS,
        0.6,
        r"\b(?:write|create|make|build|design|craft|set up|clone)\b[^.?\n]{0,30}?\bphishing (?:email|page|site|kit"
        r"|website"
        r"|campaign)\b",
    ),
    _rule(
        "how_it_is_done",
        DANGEROUS,
        0.75,
        rf"\b(?:here'?s|here is) (?:how|a|an|the)\b[^.\n]{{0,40}}?\b(?:{_BOMB}|{_MALWARE}|{_DRUGS})\b|\bstep 1\b[^.\n]"
        r"{0,60}?\b(?:precursor|explosive|detonat\w*|nerve agent|pseudoephedrine)|\bfirst,? you'?ll need\b[^.\n]{0,60}?"
        r"\b(?:pipe|explosive|precursor|pseudoephedrine|end caps)",
    ),
)

# A window of a long text (or a streamed reply) is embedded only if one of these appears in it.
_CUES = re.compile(
    r"\b(?:kill|die|dead|death|suicid\w*|hurt|harm|bomb|explosive|weapon|gun|shoot|stab|poison|drugs?|meth|hate|rape"
    r"|sex\w*|nude|naked|porn|malware|ransomware|virus|hack|steal|worthless|idiot|stupid|ugly|loser|disgusting|vermin"
    r"|disappear|better off|nobody|burden|pathetic|useless|threat|blood|torture|explicit|weapon|fentanyl|overdose"
    r"|pills|cut|end it|my life|you're|you are|fuck\w*|shit|bitch|cunt|kys|noose|bridge)\b"
)
# Reported speech and fiction: quoted abuse is described, not directed.
_REPORTING = re.compile(
    r"\b(?:told me|called me|said to me|texted me|messaged me|wrote to me|commented|someone (?:said|wrote|called)"
    r"|how (?:should|do|can|would) i (?:respond|reply|react|deal|handle|report)|report(?:ing)?|story|novel|scene|script"
    r"|character|villain|dialogue|screenplay|chapter|fiction|poem|lyrics|quote|quoted|the word|said|says|is (?:that"
    r"|this|it)"
    r" (?:harassment|bullying|abuse|hate speech|illegal|a threat)|should i (?:report|respond|block))\b"
)
_QUOTED = re.compile(
    r"[\"“”«»]([^\"“”«»\n]{2,400})[\"“”«»]|(?<![\w])'((?:[^'\n]|(?<=\w)'(?=\w)){2,400})'(?![\w])"
    # "a relative who says immigrants are criminals": the rest of the sentence is someone else's claim.
    r"|\b(?:who|that|when \w+|if \w+) (?:says?|said|claims?|thinks?|believes?|argues?|tells? me|told me|calls? me)"
    r" (?:that )?[^.?!\n]{2,300}"
)
# The history of an event is not a request to repeat it.
_HISTORY = re.compile(
    r"\b(?:history|historical(?:ly)?|in (?:1[0-9]|20)\d\d|during (?:the )?(?:ww|world war|war)|manhattan project"
    r"|did they|was it|were they|how did|why did|origin|named after|law enforcement|investigators|detect\w*"
    r"|trace|defus\w*|disposal|protect\w*|defend|report)\b"
)
# Protective framing for anything touching minors: education, abuse prevention, reporting.
_PROTECTIVE = re.compile(
    r"\b(?:abuse|abused|report(?:ing)?|signs? of|protect\w*|prevent\w*|education|educate|talk to|puberty|explain to"
    r"|consent|safety|grooming|survivor|therap\w*|pediatrician|doctor|law|legal age)\b"
)


@dataclass
class _Evidence:
    signals: list[Signal] = field(default_factory=list)
    knn: dict[str, float] = field(default_factory=dict)  # category -> best contribution
    knn_span: dict[str, tuple[int, int]] = field(default_factory=dict)
    knn_detail: dict[str, str] = field(default_factory=dict)


class ToxicityDetector(reference.NeighbourSignal):
    """Harassment, hate, self-harm, violence, sexual content and dangerous help; see the module docstring."""

    name = "toxicity"
    default_threshold = 0.7

    REFERENCE_SET = "toxicity_reference"
    KNN_FLOOR = 0.4
    KNN_WEIGHT = 0.8
    MIN_SCORE = 0.3

    def check(self, text: str, *, direction: Direction, context: CheckContext) -> list[Finding]:
        if not text.strip():
            return []
        evidence = _Evidence(signals=rule_signals(text[: self.max_chars]))
        if self.use_knn:
            self._add_knn(text, direction, context, evidence)
            if DANGEROUS in evidence.knn and safety_framing(textnorm.fold(text[: self.max_chars]).text):
                evidence.knn[DANGEROUS] *= 0.5
        return self._findings(evidence)

    # --- k-NN ----------------------------------------------------------------------------------------

    def _add_knn(self, text: str, direction: Direction, context: CheckContext, evidence: _Evidence) -> None:
        have_vector = reference.known_embedding(text, context.extra) is not None
        candidates = self._knn_candidates(text, direction, have_vector)
        if not candidates:
            return
        vectors = self.candidate_vectors(candidates, text, context.extra)
        for (_, span), votes in zip(candidates, self.reference.votes(vectors), strict=True):
            contribution = self.knn_contribution(votes.score)
            if contribution > evidence.knn.get(votes.category, 0.0):
                neighbour = self.reference.examples[votes.neighbour].text
                evidence.knn[votes.category] = contribution
                evidence.knn_span[votes.category] = span
                evidence.knn_detail[votes.category] = (
                    f"k-NN {votes.score:.2f} (nearest {votes.nearest:.2f}: {neighbour[:60]!r})"
                )

    def _knn_candidates(self, text: str, direction: Direction, have_vector: bool) -> list[reference.Candidate]:
        """The whole text (free when the turn passed its vector) and, for long texts, cued windows.

        A reply being streamed has no vector yet; it is embedded only where a cue word appears, so the
        check stays cheap for ordinary replies.
        """
        folded = textnorm.fold(text[: self.max_chars]).text
        cued = bool(_CUES.search(folded))
        long_text = self.is_long(text)
        candidates: list[reference.Candidate] = []
        if have_vector or direction is Direction.INPUT or (cued and not long_text):
            candidates.append((text, (0, len(text))))
        if long_text and cued:
            # Windows the injection detector already embedded for this message come free.
            candidates += self.cued_windows(text, _cue_count, reuse_cached=True)
        return candidates

    # --- Scoring -------------------------------------------------------------------------------------

    def _findings(self, evidence: _Evidence) -> list[Finding]:
        rules = textnorm.by_category(evidence.signals)
        findings = []
        for category in CATEGORIES:
            knn = evidence.knn.get(category, 0.0)
            score = 1.0 - (1.0 - rules.get(category, 0.0)) * (1.0 - knn)
            if score >= self.min_score:
                findings.append(self._finding(category, score, evidence, knn))
        return sorted(findings, key=lambda finding: -finding.score)

    @staticmethod
    def _finding(category: str, score: float, evidence: _Evidence, knn: float) -> Finding:
        own = [s for s in evidence.signals if s.category == category]
        spans = {(s.start, s.end) for s in own}
        parts = [f"{s.why} {s.weight:.2f}" for s in sorted(own, key=lambda s: -s.weight)[:6]]
        if knn:
            spans.add(evidence.knn_span[category])
            parts.append(evidence.knn_detail[category])
        return Finding(
            category=category,
            score=round(min(score, 1.0), 4),
            spans=tuple(Span(start, end, _LABELS[category]) for start, end in sorted(spans)[:20]),
            detail="; ".join(parts),
        )


def _cue_count(window: reference.Window) -> int:
    return len(_CUES.findall(textnorm.fold(window.text).text))


# --- Rules ---------------------------------------------------------------------------------------------


def rule_signals(text: str) -> list[Signal]:
    """Rule hits in the folded text and in decoded payloads, damped where context says so."""
    folded = textnorm.fold(text)
    signals = _match(folded.text, folded.raw_span)
    for payload in textnorm.payloads(text):
        signals += _match(payload.text, lambda a, b, p=payload: (p.start, p.end), why=f"{payload.kind}:")
    signals = _damp_reported_speech(folded.text, folded.raw_span, signals)
    signals = _damp_context(folded.text, signals)
    return textnorm.strongest_per_rule(signals)


def _match(text: str, to_raw: Any, *, why: str = "") -> list[Signal]:
    signals = []
    for rule in RULES:
        match = rule.pattern.search(text)
        if match is not None:
            start, end = to_raw(match.start(), match.end())
            signals.append(Signal(rule.category, rule.weight, start, end, f"{why}{rule.name}"))
    return signals


def _damp_reported_speech(folded: str, to_raw: Any, signals: Sequence[Signal]) -> list[Signal]:
    if not _REPORTING.search(folded):
        return list(signals)
    quoted = [to_raw(*m.span()) for m in _QUOTED.finditer(folded)]
    speech_rules = {rule.name for rule in RULES if SPEECH in rule.flags}
    damped = []
    for signal in signals:
        inside = any(start <= signal.start and signal.end <= end for start, end in quoted)
        factor = QUOTED_FACTOR if inside and signal.why.rsplit(":", 1)[-1] in speech_rules else 1.0
        damped.append(Signal(signal.category, signal.weight * factor, signal.start, signal.end, signal.why))
    return damped


def _damp_context(folded: str, signals: Sequence[Signal]) -> list[Signal]:
    """History questions about weapons, and protective questions about children, are not requests."""
    history = safety_framing(folded)
    protective = bool(_PROTECTIVE.search(folded))
    fiction = bool(_FICTION.search(folded))
    fiction_rules = {rule.name for rule in RULES if FICTION in rule.flags}
    damped = []
    for signal in signals:
        factor = 0.6 if fiction and signal.why.rsplit(":", 1)[-1] in fiction_rules else 1.0
        if history and signal.category == DANGEROUS:
            factor = 0.5
        if protective and signal.category == SEXUAL_MINORS and not _explicit_with_minor(folded):
            factor = 0.3
        damped.append(Signal(signal.category, signal.weight * factor, signal.start, signal.end, signal.why))
    return damped


# "How do I make..." asks for the capability whatever else the message says.
_FIRST_PERSON_MAKE = re.compile(rf"\b(?:i|we|me)\b[^.?\n]{{0,20}}?\b{_MAKE}\b")
_EXPLICIT = re.compile(r"\b(?:erotic|explicit|porn\w*|nude|nudes|naked|seduc\w*|aroused|arousing|lewd|nsfw|sexy)\b")


def safety_framing(folded: str) -> bool:
    """A question about history, detection or defence, not a first-person request to make something."""
    return bool(_HISTORY.search(folded)) and not _FIRST_PERSON_MAKE.search(folded)


def _explicit_with_minor(folded: str) -> bool:
    return bool(_EXPLICIT.search(folded))
