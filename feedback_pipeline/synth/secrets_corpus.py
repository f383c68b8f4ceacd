"""A labelled corpus of code-review and CI-log text with planted identifiers and secrets.

Every planted value comes with its ground-truth span and kind (the redactor's kind names), so
recall and precision can be measured per entity type. Decoys that a careless redactor would
eat are planted beside them and carry no span: UUIDs, md5 and sha256 sums, 16-digit numbers
that fail Luhn, versions, ports, dates, paths, status codes, MAC addresses, `std::vector`,
Python slices, `max_tokens: 512`, template placeholders and the like.

`make_labelled_corpus` renders every text from scratch. `iter_texts` recombines a pool of
rendered fragments, which is fast enough to stream 10^6 texts of 1-2 KB through a benchmark.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
import uuid
from collections.abc import Callable, Iterator

import pandas as pd

Span = tuple[int, int, str]

DENY_TERMS: tuple[str, ...] = (
    "Zoë Müller", "José Álvarez", "José", "Jane Doe", "Priya Raman", "Björn Åkesson",
    "Nguyễn Văn An", "Siobhán Kelly", "Łukasz Wróbel", "Chidi Okafor", "François Dubois",
)
ENTITY_KINDS: tuple[str, ...] = (
    "EMAIL", "ENGINEER", "COMMIT", "PHONE", "IPV4", "IPV6", "CARD", "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY", "GITHUB_TOKEN", "SLACK_TOKEN", "STRIPE_KEY", "GOOGLE_API_KEY",
    "OPENAI_KEY", "ANTHROPIC_KEY", "HF_TOKEN", "JWT", "PRIVATE_KEY", "PASSWORD", "SECRET",
    "NAME",
)

_ALNUM = string.ascii_letters + string.digits
_B64 = _ALNUM + "+/"
_URLSAFE = _ALNUM + "-_"
_HEX = "0123456789abcdef"
_FIRST = ["alex", "sam", "jordan", "maria", "wei", "fatima", "olu", "ines", "kenji", "lena"]
_LAST = ["smith", "garcia", "chen", "okoye", "novak", "silva", "tanaka", "berg", "rossi"]
_DOMAINS = ["example.com", "corp.example.org", "mail.example.net", "dev.example.io",
            "example.co.uk"]
_HOSTS = ["db.internal", "orders-db.prod.svc", "cache-1.internal", "mq.staging.example.net"]
_PATHS = ["src/payments/retry.py", "services/api/handlers/auth.go", "web/src/components/Cart.tsx",
          "/var/log/worker/worker-3.log", "tests/integration/test_checkout.py",
          "C:\\build\\agent\\_work\\1\\s\\setup.ps1", "./node_modules/.bin/jest",
          "/home/runner/work/app/app/Makefile"]


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _mixed(rng: random.Random, alphabet: str, n: int) -> str:
    """Random like a real key: at least one upper, one lower and one digit."""
    while True:
        value = _rand(rng, alphabet, n)
        if (any(c.isupper() for c in value) and any(c.islower() for c in value)
                and any(c.isdigit() for c in value)):
            return value


def _hex_mixed(rng: random.Random, n: int) -> str:
    while True:
        value = _rand(rng, _HEX, n)
        if any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
            return value


def luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15),
                                 ("37", 15), ("6011", 16), ("4", 13)])
    body = prefix + _rand(rng, string.digits, length - len(prefix) - 1)
    digits = body + luhn_check_digit(body)
    style = rng.random()
    if length == 16 and style < 0.35:
        return " ".join(digits[i:i + 4] for i in range(0, 16, 4))
    if length == 16 and style < 0.6:
        return "-".join(digits[i:i + 4] for i in range(0, 16, 4))
    if length == 15 and style < 0.5:
        return f"{digits[:4]} {digits[4:10]} {digits[10:]}"
    return digits


def _non_luhn_16(rng: random.Random) -> str:
    body = rng.choice("123456789") + _rand(rng, string.digits, 14)
    good = luhn_check_digit(body)
    return body + rng.choice([d for d in string.digits if d != good])


def _phone(rng: random.Random) -> str:
    d = lambda n: _rand(rng, string.digits, n)  # noqa: E731
    area = rng.choice("23456789") + d(2)
    exch = rng.choice("23456789") + d(2)
    return rng.choice([
        f"+1 ({area}) {exch}-{d(4)}", f"({area}) {exch}-{d(4)}", f"{area}-{exch}-{d(4)}",
        f"{area}.{exch}.{d(4)}", f"+1-{area}-{exch}-{d(4)}", f"1-{area}-{exch}-{d(4)}",
        f"+44 20 {d(4)} {d(4)}", f"+44 7{d(3)} {d(6)}", f"+49 30 {d(8)}",
        f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}", f"+91 9{d(4)} {d(5)}", f"+81-3-{d(4)}-{d(4)}",
        f"+61 4{d(2)} {d(3)} {d(3)}", f"+353 1 {d(3)} {d(4)}", f"+55 11 9{d(4)}-{d(4)}",
    ])


def _ipv4(rng: random.Random) -> str:
    first = rng.choice([10, 172, 192, 34, 52, 104, 185, 203])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _ipv6(rng: random.Random) -> str:
    g = lambda: format(rng.randint(0x100, 0xFFFF), "x")  # noqa: E731
    return rng.choice([
        ":".join(g() for _ in range(8)), f"2001:db8::{g()}:{g()}", f"fe80::{g()}:{g()}:{g()}:{g()}",
        f"2a02:{g()}:{g()}::{rng.randint(1, 99)}", f"2001:db8:{g()}:{g()}::{g()}",
        f"2606:4700:{g()}::{g()}:{g()}", f"::ffff:{_ipv4(rng)}",
    ])


def _email(rng: random.Random) -> str:
    local = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}"
    if rng.random() < 0.25:
        local += f"+{rng.choice(['ci', 'alerts', 'review', 'oncall'])}"
    if rng.random() < 0.2:
        local += str(rng.randint(1, 99))
    email = f"{local}@{rng.choice(_DOMAINS)}"
    if rng.random() < 0.2:
        email = "".join(c.upper() if rng.random() < 0.3 else c for c in email)
    return email


def _jwt(rng: random.Random) -> str:
    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    header = b64({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"})
    payload = b64({"sub": f"user-{rng.randint(1, 10**6)}", "iat": rng.randint(1.6e9, 1.8e9),
                   "scope": "repo:read"})
    return f"{header}.{payload}.{_rand(rng, _URLSAFE, 43)}"


def _pem(rng: random.Random) -> str:
    label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY",
                        "OPENSSH PRIVATE KEY"])
    lines = [_rand(rng, _B64, 64) for _ in range(rng.randint(3, 6))]
    lines.append(_rand(rng, _B64, rng.randint(8, 60)) + "==")
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"


def _password(rng: random.Random) -> str:
    core = _mixed(rng, _ALNUM, rng.randint(9, 16))
    if rng.random() < 0.5:
        i = rng.randrange(len(core))
        core = core[:i] + rng.choice("!*-_.~%$") + core[i:]
    return core


def _name(rng: random.Random) -> str:
    term = rng.choice(DENY_TERMS)
    style = rng.random()
    if style < 0.15:
        return term.upper()
    if style < 0.3:
        return term.lower()
    return term


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "EMAIL": _email,
    "ENGINEER": lambda r: f"ENG-{r.randint(1000, 9999999)}",
    "COMMIT12": lambda r: _hex_mixed(r, 12),
    "COMMIT40": lambda r: _hex_mixed(r, 40),
    "COMMIT7": lambda r: _hex_mixed(r, r.choice([7, 8, 9, 10])),
    "PHONE": _phone,
    "IPV4": _ipv4,
    "IPV6": _ipv6,
    "CARD": _card,
    "AWS_ACCESS_KEY": lambda r: r.choice(["AKIA", "ASIA"]) + _rand(r, string.ascii_uppercase
                                                                    + string.digits, 16),
    "AWS_SECRET_KEY": lambda r: _mixed(r, _B64, 40),
    "GITHUB_TOKEN": lambda r: r.choice([
        f"{r.choice(['ghp', 'gho', 'ghs'])}_{_mixed(r, _ALNUM, 36)}",
        f"github_pat_{_mixed(r, _ALNUM, 22)}_{_mixed(r, _ALNUM, 59)}"]),
    "SLACK_TOKEN": lambda r: (f"xox{r.choice('bpa')}-{r.randint(10**10, 10**12)}-"
                              f"{r.randint(10**10, 10**12)}-{_mixed(r, _ALNUM, 24)}"),
    "STRIPE_KEY": lambda r: f"{r.choice(['sk', 'rk'])}_live_{_mixed(r, _ALNUM, 24)}",
    "GOOGLE_API_KEY": lambda r: "AIza" + _mixed(r, _URLSAFE, 35),
    "OPENAI_KEY": lambda r: r.choice([f"sk-{_mixed(r, _ALNUM, 48)}",
                                      f"sk-proj-{_mixed(r, _URLSAFE, 64)}"]),
    "ANTHROPIC_KEY": lambda r: f"sk-ant-api03-{_mixed(r, _URLSAFE, 93)}AA",
    "HF_TOKEN": lambda r: "hf_" + _mixed(r, _ALNUM, 34),
    "JWT": _jwt,
    "PRIVATE_KEY": _pem,
    "PASSWORD": _password,
    "SECRET": lambda r: _mixed(r, _ALNUM + "-_!*", r.randint(12, 28)),
    "NAME": _name,
    # decoys: no span
    "uuid": lambda r: "-".join(_rand(r, _HEX, n) for n in (8, 4, 4, 4, 12)),
    "UUID": lambda r: "-".join(_rand(r, _HEX, n) for n in (8, 4, 4, 4, 12)).upper(),
    "md5": lambda r: _rand(r, _HEX, 32),
    "sha256": lambda r: _rand(r, _HEX, 64),
    "nonluhn": _non_luhn_16,
    "version": lambda r: r.choice([f"v{r.randint(0, 9)}.{r.randint(0, 30)}.{r.randint(0, 20)}",
                                   f"3.{r.randint(8, 13)}.{r.randint(0, 12)}",
                                   f"{r.randint(1, 20)}.{r.randint(0, 9)}.{r.randint(0, 99)}-rc.1",
                                   f"10.0.{r.randint(17000, 22999)}.{r.randint(100, 4000)}"]),
    "port": lambda r: str(r.choice([5432, 6379, 8080, 3000, 9092, 443, 27017])),
    "date": lambda r: r.choice([f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
                                f"{r.randint(1, 12):02d}/{r.randint(1, 28):02d}/2024",
                                f"2025-0{r.randint(1, 9)}-1{r.randint(0, 9)}T"
                                f"{r.randint(10, 23)}:{r.randint(10, 59)}:{r.randint(10, 59)}Z"]),
    "path": lambda r: r.choice(_PATHS),
    "line": lambda r: str(r.randint(1, 2400)),
    "status": lambda r: str(r.choice([200, 201, 204, 301, 400, 401, 403, 404, 409, 429, 500,
                                      502, 503])),
    "ms": lambda r: str(r.randint(3, 98765)),
    "mac": lambda r: ":".join(_rand(r, _HEX, 2) for _ in range(6)),
    "first": lambda r: r.choice(_FIRST),
    "host": lambda r: r.choice(_HOSTS),
    "user": lambda r: r.choice(["app", "svc_orders", "readonly", "admin", "ci"]),
    "build": lambda r: str(r.randint(1000, 99999)),
    "pod": lambda r: f"api-{_rand(r, _HEX, 10)}-{_rand(r, string.ascii_lowercase, 5)}",
    "count": lambda r: str(r.choice([128, 256, 512, 1024, 2048, 4096])),
}
_KIND_OF = {"COMMIT12": "COMMIT", "COMMIT40": "COMMIT", "COMMIT7": "COMMIT"}

TEMPLATES: tuple[str, ...] = (
    # review prose
    "Reviewer {NAME} ({ENGINEER}) flagged that the retry loop in {path}:{line} swallows the "
    "HTTP {status} and retries forever.",
    "Please loop in {ENGINEER} before merging; they own the rollback plan for {version}.",
    "{NAME} wrote: this duplicates the logic from commit {COMMIT12}, can we reuse it?",
    "Ping {EMAIL} or mailto:{EMAIL} if the deploy of {version} fails again.",
    "cc <{EMAIL}>, {NAME} - the on-call phone is {PHONE} this week.",
    "Customer reported the charge on card {CARD} twice; order id {nonluhn} shows one row.",
    "The fix in {COMMIT12} regressed {path}; request {uuid} timed out after {ms} ms.",
    "Escalation: call {PHONE} (primary) or {PHONE} (backup), then email {EMAIL}.",
    "Thanks {first}! LGTM once the tokenizer is pinned and max_tokens: {count} is restored.",
    "Nit: the token count check is off by one; see the review by {ENGINEER} on {date}.",
    "Do not log the password: use <your-password> in docs and ${{DB_PASSWORD}} in CI.",
    "We use scikit-learn {version} and std::vector<int> in the C++ bridge; slice is x[1::2].",
    "The ETag \"{md5}\" matched but the md5sum {md5} of the artifact did not.",
    "Invoice {nonluhn} and ticket {nonluhn} are unrelated to the card change.",
    # git and CI logs
    "commit {COMMIT40}\nAuthor: {NAME} <{EMAIL}>\nDate:   {date}\n\n    Fix flaky test in {path}",
    "HEAD is now at {COMMIT7} Merge pull request #{build} from team/fix-retry",
    "Reverts commit {COMMIT7}; cherry-picked from {COMMIT7} on release/{version}.",
    "git diff {COMMIT7}..{COMMIT7} -- {path}",
    "uses: actions/checkout@{COMMIT40} # v4",
    "2024-05-01T12:30:45Z [INFO] connecting to postgres://{user}:{PASSWORD}@{host}:{port}/orders",
    "redis connection string: redis://:{PASSWORD}@{IPV4}:6379/0",
    "MONGO_URI=mongodb+srv://{user}:{PASSWORD}@cluster0.example.net/app?retryWrites=true",
    "[worker] listening on 0.0.0.0:{port}; upstream {IPV4}:{port} returned {status}",
    "ssh deploy@{IPV4} -p 22 'systemctl restart api' (ok in {ms} ms)",
    "Peer {IPV6} closed the stream; retrying via [{IPV6}]:{port}",
    "docker pull registry.example.com/api@sha256:{sha256} && docker run {pod}",
    "eth0 {mac} inet {IPV4}/24 inet6 {IPV6}/64",
    "Build #{build} on Python {version}: FAILED tests/test_api.py::test_login - 503 after {ms}ms",
    "pip install requests=={version} urllib3=={version}; npm i lodash@4.17.21; @pytest.fixture",
    "Windows build {version} reported exit code 0x80070005 at {date}",
    # pasted config and secrets
    "AWS_ACCESS_KEY_ID={AWS_ACCESS_KEY}\nAWS_SECRET_ACCESS_KEY={AWS_SECRET_KEY}\n"
    "AWS_REGION=eu-west-1",
    "boto3.client('s3', aws_access_key_id='{AWS_ACCESS_KEY}', "
    "aws_secret_access_key='{AWS_SECRET_KEY}')",
    "export GITHUB_TOKEN={GITHUB_TOKEN}\ngh pr checkout {build}",
    "curl -H 'Authorization: token {GITHUB_TOKEN}' https://api.github.com/repos/org/app",
    "SLACK_BOT_TOKEN: {SLACK_TOKEN}\nchannel: #deploys",
    "stripe.api_key = \"{STRIPE_KEY}\"  # TODO move to vault",
    "maps: key={GOOGLE_API_KEY} for the geocoder; quota 429 at {date}",
    "OPENAI_API_KEY={OPENAI_KEY}\nmodel: gpt-4o temperature: 0.2",
    "client = Anthropic(api_key=\"{ANTHROPIC_KEY}\")",
    "huggingface-cli login --token {HF_TOKEN}",
    "Authorization: Bearer {JWT}",
    "session cookie jwt={JWT}; path=/; HttpOnly",
    "Pasted key, please rotate:\n{PRIVATE_KEY}\n(end of paste)",
    "DB_PASSWORD={SECRET}\nDB_HOST={host}\nDB_PORT={port}",
    "password: \"{SECRET}\"\nusername: {user}",
    "api_key = '{SECRET}'",
    "client_secret: {SECRET}",
    "{{\"token\": \"{SECRET}\", \"expires_in\": 3600}}",
    "mysql -u {user} --password={SECRET} -h {host}",
    "X-Api-Key: {SECRET}",
    "Authorization: Bearer {SECRET}",
    "The secret_name is prod-db and the password_hash column is bcrypt; status {status}.",
)


# ---- issue 17 families: public secret-scanner shapes, cloud credentials, more PII ---------------

def _b64raw(rng: random.Random, n: int) -> str:
    return base64.b64encode(bytes(rng.getrandbits(8) for _ in range(n))).decode()


def _iban(rng: random.Random) -> str:
    from stdnum import iban
    country, bban_len = rng.choice([("DE", 18), ("GB", 18), ("NL", 14)])
    if country in ("GB", "NL"):
        bban = _rand(rng, string.ascii_uppercase, 4) + _rand(rng, string.digits, bban_len - 4)
    else:
        bban = _rand(rng, string.digits, bban_len)
    value = country + iban.calc_check_digits(country + "00" + bban) + bban
    if rng.random() < 0.5:
        value = " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    return value


def _ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _domestic_phone(rng: random.Random) -> str:
    d = lambda n: _rand(rng, string.digits, n)  # noqa: E731
    return rng.choice([
        f"030 {d(7)}", f"089 {d(8)}", f"0171 {d(7)}", f"03-{d(4)}-{d(4)}", f"090-{d(4)}-{d(4)}",
        f"020 7946 {d(4)}", f"07700 900{d(3)}", f"0161 496 {d(4)}", f"0049 30 {d(7)}",
        f"0044 20 7946 {d(4)}", f"0033 1 {d(2)} {d(2)} {d(2)} {d(2)}",
    ])


def _obfuscated_email(rng: random.Random) -> str:
    local, host = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}", rng.choice(["example", "corp"])
    tld = rng.choice(["com", "org", "io"])
    return rng.choice([
        f"{local} [at] {host} [dot] {tld}", f"{local}(at){host}(dot){tld}",
        f"{local} @ {host}.{tld}", f"{local}＠{host}.{tld}", f"{local}%40{host}.{tld}",
        f"{local}@{rng.choice(['münchen', 'bücher', 'köln'])}.{rng.choice(['de', 'example'])}",
        f"{local} at {host} dot {tld}",
    ])


def _pem_body(rng: random.Random) -> str:
    raw = "MII" + _mixed(rng, _B64, 61)
    lines = [raw] + [_mixed(rng, _B64, 64) for _ in range(rng.randint(3, 8))]
    return "\n".join(lines + [_mixed(rng, _B64, rng.randint(10, 40)) + "=="])


def _b64_pem(rng: random.Random) -> str:
    text = (f"-----BEGIN {rng.choice(['RSA ', 'EC ', ''])}PRIVATE KEY-----\n"
            + _rand(rng, _B64, 64) + "\n-----END PRIVATE KEY-----\n")
    return base64.b64encode(text.encode()).decode()


def _docker_blob(rng: random.Random) -> str:
    auth = base64.b64encode(f"ci:{_password(rng)}".encode()).decode()
    return base64.b64encode(json.dumps(
        {"auths": {"registry.example.com": {"auth": auth}}}).encode()).decode()


def _hex(rng: random.Random, n: int) -> str:
    return _hex_mixed(rng, n)


NEW_FAMILIES: dict[str, Callable[[random.Random], str]] = {
    "GITLAB_TOKEN": lambda r: r.choice([f"{r.choice(['glpat', 'gldt', 'glrt', 'glptt'])}-"
                                        f"{_mixed(r, _URLSAFE, 20)}",
                                        f"GR1348941{_mixed(r, _URLSAFE, 20)}"]),
    "NPM_TOKEN": lambda r: "npm_" + _mixed(r, _ALNUM, 36),
    "PYPI_TOKEN": lambda r: "pypi-AgEIcHlwaS5vcmc" + _mixed(r, _URLSAFE, r.randint(60, 150)),
    "VAULT_TOKEN": lambda r: f"hv{r.choice('sbr')}." + _mixed(r, _URLSAFE, r.choice([24, 90])),
    "TERRAFORM_TOKEN": lambda r: f"{_mixed(r, _ALNUM, 14)}.atlasv1.{_mixed(r, _URLSAFE, 67)}",
    "DATABRICKS_TOKEN": lambda r: "dapi" + _hex(r, 32) + r.choice(["", "-2"]),
    "SENDGRID_KEY": lambda r: f"SG.{_mixed(r, _URLSAFE, 22)}.{_mixed(r, _URLSAFE, 43)}",
    "TWILIO_KEY": lambda r: r.choice(["AC", "SK"]) + _hex(r, 32),
    "SLACK_WEBHOOK": lambda r: (f"https://hooks.slack.com/services/T{_rand(r, _ALNUM.upper(), 8)}"
                                f"/B{_rand(r, _ALNUM.upper(), 8)}/{_mixed(r, _ALNUM, 24)}"),
    "GCP_OAUTH_TOKEN": lambda r: "ya29." + _mixed(r, _URLSAFE, r.randint(60, 150)),
    "SHOPIFY_TOKEN": lambda r: f"{r.choice(['shpat', 'shpss', 'shpca'])}_{_hex(r, 32)}",
    "MAILGUN_KEY": lambda r: "key-" + _hex(r, 32),
    "HEROKU_KEY": lambda r: "HRKU-AA" + _mixed(r, _URLSAFE, 58),
    "DIGITALOCEAN_TOKEN": lambda r: f"do{r.choice('opr')}_v1_{_hex(r, 64)}",
    "LINEAR_KEY": lambda r: "lin_api_" + _mixed(r, _ALNUM, 40),
    "ATLASSIAN_TOKEN": lambda r: "ATATT3xFfGF0" + _mixed(r, _URLSAFE, 170) + "=" + _hex(r, 8),
    "POSTMAN_KEY": lambda r: f"PMAK-{_hex(r, 24)}-{_hex(r, 34)}",
    "DOPPLER_TOKEN": lambda r: f"dp.{r.choice(['pt', 'st', 'sa'])}.{_mixed(r, _ALNUM, 43)}",
    "PULUMI_TOKEN": lambda r: "pul-" + _hex(r, 40),
    "GRAFANA_TOKEN": lambda r: r.choice([f"glc_{_mixed(r, _ALNUM, 80)}==",
                                         f"glsa_{_mixed(r, _ALNUM, 32)}_{_hex(r, 8)}"]),
    "NEW_RELIC_KEY": lambda r: "NRAK-" + _rand(r, string.ascii_uppercase + string.digits, 27),
    "SENTRY_DSN": lambda r: _hex(r, 32),
    "AZURE_KEY": lambda r: _b64raw(r, 64),
    "SAS_SIGNATURE": lambda r: _b64raw(r, 32).replace("+", "%2B").replace("/", "%2F")
    .replace("=", "%3D"),
    "AWS_SIGNATURE": lambda r: _rand(r, _HEX, 64),
    "PEM_BODY": _pem_body,
    "B64_PEM": _b64_pem,
    "DOCKER_AUTH": lambda r: base64.b64encode(f"ci:{_password(r)}".encode()).decode(),
    "DOCKER_BLOB": _docker_blob,
    "IBAN": _iban,
    "SSN": _ssn,
    "PHONE_DOMESTIC": _domestic_phone,
    "EMAIL_OBFUSCATED": _obfuscated_email,
    "HOST_IP": lambda r: "-".join(str(x) for x in (10, r.randint(0, 255), r.randint(0, 255),
                                                   r.randint(1, 254))),
    # decoys of the new families: no span
    "semver_build": lambda r: f"{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}"
                              f"+build.{r.randint(1, 99)}",
    "docker_id": lambda r: _hex_mixed(r, 12),
    "sha1": lambda r: _hex_mixed(r, 40),
    "bad_ssn": lambda r: r.choice([f"000-{r.randint(10, 99)}-{r.randint(1000, 9999)}",
                                   f"666-{r.randint(10, 99)}-{r.randint(1000, 9999)}",
                                   f"9{r.randint(10, 99)}-{r.randint(10, 99)}-"
                                   f"{r.randint(1000, 9999)}"]),
    "bad_iban": lambda r: "DE00" + _rand(r, string.digits, 18),
    "word_token": lambda r: r.choice(["npm_install_dependencies", "hvs.example", "key-value",
                                      "sk-learn", "pul-request", "dapi-client", "glc_total"]),
    "vendor_decoy": lambda r: r.choice([
        "discord_channel: general", f"asana_version: {r.randint(1, 9)}.{r.randint(0, 20)}.3",
        f"asana_due: 2024-0{r.randint(1, 9)}-1{r.randint(0, 9)}", "dropbox_folder: /shared/ops",
        "sumo_source: supportTickets", "cloudant_db: orders", "heroku_app: orders-staging",
        f"discord_guild_count = {r.randint(2, 999)}", "jira_ticket = OPS-4521",
        "linear layer: 512 -> 256", "sentry_environment = production", "kucoin_market: BTC-USDT",
        "dropbox_key = xxxxxxxxxxxxxxx", "cloudant_key: ${CLOUDANT_KEY}",
        f"twitch_channel: gamer{r.randint(10, 99)}", f"travis_build: {r.randint(1000, 99999)}"]),
    "ap_name": lambda r: r.choice(["APCategoryList", "APIGateway", "APEntryV2", "AP2Config",
                                   "APBase64Encoder", "APDataV10Handler", "APACHE2", "AP7000"]),
}
GENERATORS.update(NEW_FAMILIES)
_KIND_OF.update({"PEM_BODY": "PRIVATE_KEY", "B64_PEM": "PRIVATE_KEY", "DOCKER_BLOB": "DOCKER_AUTH",
                 "PHONE_DOMESTIC": "PHONE", "EMAIL_OBFUSCATED": "EMAIL", "HOST_IP": "IPV4",
                 "CLI_PASSWORD": "PASSWORD"})
GENERATORS["CLI_PASSWORD"] = lambda r: _password(r).replace("-", "_").lstrip("-") or "Pa55word"
NEW_ENTITY_KINDS: tuple[str, ...] = tuple(dict.fromkeys(
    _KIND_OF.get(k, k) for k in NEW_FAMILIES if k[0].isupper()))
ENTITY_KINDS = ENTITY_KINDS + tuple(k for k in NEW_ENTITY_KINDS if k not in ENTITY_KINDS)

NEW_TEMPLATES: tuple[str, ...] = (
    "git remote set-url origin https://oauth2:{GITLAB_TOKEN}@gitlab.example.com/app.git",
    "GITLAB_RUNNER_TOKEN: {GITLAB_TOKEN}",
    "//registry.npmjs.org/:_authToken={NPM_TOKEN}",
    "twine upload -u __token__ -p {PYPI_TOKEN} dist/*",
    "vault login {VAULT_TOKEN} && vault kv get secret/app",
    "credentials \"app.terraform.io\" {{ token = \"{TERRAFORM_TOKEN}\" }}",
    "databricks configure --host https://adb-1.azuredatabricks.net --token {DATABRICKS_TOKEN}",
    "sg = SendGridAPIClient('{SENDGRID_KEY}')",
    "twilio: account {TWILIO_KEY} rejected the request ({status})",
    "notify: curl -X POST -d @payload.json {SLACK_WEBHOOK}",
    "gcloud returned ya29 access: {GCP_OAUTH_TOKEN} (expires in 3599s)",
    "X-Shopify-Access-Token: {SHOPIFY_TOKEN}",
    "requests.post(url, auth=('api', '{MAILGUN_KEY}'))",
    "heroku auth:token printed {HEROKU_KEY}",
    "doctl auth init -t {DIGITALOCEAN_TOKEN}",
    "curl -H \"Authorization: {LINEAR_KEY}\" https://api.linear.app/graphql",
    "jira: basic auth user {EMAIL} with {ATLASSIAN_TOKEN}",
    "newman run coll.json --postman-api-key {POSTMAN_KEY}",
    "doppler configure set token {DOPPLER_TOKEN}",
    "pulumi login with {PULUMI_TOKEN} failed: {status}",
    "grafana-agent: using {GRAFANA_TOKEN} for remote_write",
    "newrelic: {NEW_RELIC_KEY} is not authorised for account {build}",
    "SENTRY_URL=https://{SENTRY_DSN}@o{build}.ingest.sentry.io/{build}",
    "DefaultEndpointsProtocol=https;AccountName=appstore;AccountKey={AZURE_KEY};"
    "EndpointSuffix=core.windows.net",
    "GET https://appstore.blob.core.windows.net/c/x.csv?sv=2022-11-02&se={date}&sp=r&sig="
    "{SAS_SIGNATURE} 403",
    "presigned: https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
    "{AWS_ACCESS_KEY}%2F20240501%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Signature={AWS_SIGNATURE}",
    "key material pasted without the header:\n{PEM_BODY}\n",
    "tls.key: {B64_PEM}",
    "{{\"auths\": {{\"registry.example.com\": {{\"auth\": \"{DOCKER_AUTH}\"}}}}}}",
    ".dockerconfigjson: {DOCKER_BLOB}",
    "mysql -u {user} -p{CLI_PASSWORD} -h {host} orders",
    "redis-cli -h {host} -a {CLI_PASSWORD} ping",
    "curl -u deploy:{CLI_PASSWORD} https://ci.example.com/api/json",
    "echo ok; docker login -u ci -p {CLI_PASSWORD} registry.example.com",
    "PGPASSWORD={SECRET} psql -h {host} -U {user}",
    "SECRET_KEY_BASE={SECRET}\nRAILS_ENV=production",
    "export ORDERS_DB_PASSWORD={SECRET}",
    "The password is {CLI_PASSWORD} until Friday, then rotate it.",
    "pw: {CLI_PASSWORD}",
    "Refund to IBAN {IBAN} for invoice {nonluhn}.",
    "Applicant SSN {SSN} was logged in plain text.",
    "Call the Berlin office on {PHONE_DOMESTIC} or the backup {PHONE_DOMESTIC}.",
    "Contact: {EMAIL_OBFUSCATED} (spam-safe form)",
    "node ip-{HOST_IP}.eu-west-1.compute.internal NotReady; also {HOST_IP}.internal",
    # decoys of the new families
    "Successfully built {docker_id}\nSuccessfully tagged app:{version}",
    "sha1sum: {sha1}  dist/app.tar.gz",
    "Released {semver_build} (build metadata) to the staging channel.",
    "Test fixture ids {bad_ssn} and {bad_iban} are synthetic and invalid.",
    "git clone git@github.com:org/repo.git && cd repo && {word_token} ran",
    "Redacted: password: <PASSWORD_1>, token <SECRET_2>, contact <EMAIL_3> [REDACTED]",
    # decoys of the vendor keyword rules and the Artifactory password: a vendor's name beside
    # a value of another shape, CamelCase names that start like `AP…`, ids that are UUIDs
    "{vendor_decoy}\nrequest_id = {uuid}, user_id = {line}; see {ap_name} in the docs",
)
TEMPLATES = TEMPLATES + NEW_TEMPLATES
_NEW_TEMPLATE_RANGE = range(len(TEMPLATES) - len(NEW_TEMPLATES), len(TEMPLATES))


# ---- public-scanner shapes (gitleaks rules, detect-secrets plugins) -----------------------------
#
# Each family's documented format, written as a shape: `{hex:32}` lowercase hex, `{HEX:8}`
# uppercase hex, `{alnum:36}` letters and digits (upper, lower and a digit), `{lower:40}`
# lowercase letters and digits, `{upper:24}` uppercase letters and digits, `{url:43}` base64url,
# `{b64:60}` base64, `{letters:34}` mixed-case letters, `{digits:16}`, `{uuid}`, `{age:58}` bech32. Planted in the contexts of
# `SCANNER_CONTEXTS`. The expressions that detect them live in `core.redaction.secret_rules`; these are
# written from the formats, not from those expressions.

SCANNER_SHAPES: dict[str, tuple[str, str]] = {
    "BITBUCKET": ("BITBUCKET_TOKEN", "ATBB{alnum:32}{HEX:8}"),
    "GITEA": ("GITEA_TOKEN", "gta_{alnum:40}"),
    "RUBYGEMS": ("RUBYGEMS_KEY", "rubygems_{hex:48}"),
    "CLOJARS": ("CLOJARS_TOKEN", "CLOJARS_{lower:60}"),
    "NUGET": ("NUGET_KEY", "oy2{lower:43}"),
    "DOCKER_HUB": ("DOCKER_HUB_TOKEN", "dckr_pat_{url:27}"),
    "ARTIFACTORY": ("ARTIFACTORY_KEY", "AKCp{alnum:69}"),
    "BUILDKITE": ("BUILDKITE_TOKEN", "bkua_{hex:40}"),
    "CIRCLECI": ("CIRCLECI_TOKEN", "CCIPAT_{alnum:22}_{hex:40}"),
    "SOURCEGRAPH": ("SOURCEGRAPH_TOKEN", "sgp_{hex:16}_{hex:40}"),
    "SONAR": ("SONAR_TOKEN", "squ_{hex:40}"),
    "OCTOPUS": ("OCTOPUS_KEY", "API-{upper:26}"),
    "PREFECT": ("PREFECT_KEY", "pnu_{alnum:36}"),
    "README": ("README_KEY", "rdme_{lower:70}"),
    "INFRACOST": ("INFRACOST_KEY", "ico-{alnum:32}"),
    "HARNESS": ("HARNESS_TOKEN", "pat.{url:22}.{hex:24}.{alnum:20}"),
    "SCALINGO": ("SCALINGO_TOKEN", "tk-us-{url:48}"),
    "FLY": ("FLY_TOKEN", "fo1_{url:43}"),
    "NETLIFY": ("NETLIFY_TOKEN", "nfp_{alnum:36}"),
    "SUPABASE": ("SUPABASE_KEY", "sbp_{hex:40}"),
    "PLANETSCALE": ("PLANETSCALE_TOKEN", "pscale_tkn_{url:43}"),
    "TAILSCALE": ("TAILSCALE_KEY", "tskey-auth-{alnum:12}-{alnum:30}"),
    "CLOUDFLARE_CA": ("CLOUDFLARE_KEY", "v1.0-{hex:24}-{hex:146}"),
    "OPENSHIFT": ("OPENSHIFT_TOKEN", "sha256~{url:43}"),
    "DYNATRACE": ("DYNATRACE_TOKEN", "dt0c01.{upper:24}.{upper:64}"),
    "AGE": ("PRIVATE_KEY", "AGE-SECRET-KEY-1{age:58}"),
    "ALIBABA": ("ALIBABA_KEY", "LTAI{alnum:20}"),
    "YANDEX": ("YANDEX_KEY", "AQVN{url:36}"),
    "AZURE_AD": ("AZURE_CLIENT_SECRET", "{alnum:3}8Q~{url:34}"),
    "GOOGLE_OAUTH_SECRET": ("GOOGLE_CLIENT_SECRET", "GOCSPX-{url:28}"),
    "GROQ": ("AI_API_KEY", "gsk_{alnum:52}"),
    "XAI": ("AI_API_KEY", "xai-{alnum:80}"),
    "REPLICATE": ("AI_API_KEY", "r8_{alnum:37}"),
    "PERPLEXITY": ("AI_API_KEY", "pplx-{alnum:48}"),
    "SQUARE": ("SQUARE_TOKEN", "sq0atp-{url:22}"),
    "SQUARE_SECRET": ("SQUARE_TOKEN", "sq0csp-{url:43}"),
    "SHIPPO": ("SHIPPO_TOKEN", "shippo_live_{hex:40}"),
    "EASYPOST": ("EASYPOST_KEY", "EZAK{alnum:54}"),
    "DUFFEL": ("DUFFEL_TOKEN", "duffel_test_{url:43}"),
    "FLUTTERWAVE": ("FLUTTERWAVE_KEY", "FLWSECK_TEST-{hex:32}-X"),
    "PLAID": ("PLAID_TOKEN", "access-sandbox-{uuid}"),
    "SLACK_APP": ("SLACK_TOKEN", "xapp-1-A{upper:10}-{digits:13}-{hex:64}"),
    "TELEGRAM": ("TELEGRAM_TOKEN", "{digits:10}:AA{url:33}"),
    "DISCORD": ("DISCORD_TOKEN", "MT{alnum:22}.{url:6}.{url:38}"),
    "DISCORD_WEBHOOK": ("DISCORD_WEBHOOK", "https://discord.com/api/webhooks/{digits:18}/"
                        "{url:68}"),
    "TEAMS_WEBHOOK": ("TEAMS_WEBHOOK", "https://contoso.webhook.office.com/webhookb2/{uuid}@"
                      "{uuid}/IncomingWebhook/{hex:32}/{uuid}"),
    "MAILCHIMP": ("MAILCHIMP_KEY", "{hex:32}-us{digits:2}"),
    "BREVO": ("BREVO_KEY", "xkeysib-{hex:64}-{alnum:16}"),
    "TYPEFORM": ("TYPEFORM_TOKEN", "tfp_{alnum:44}"),
    "FRAMEIO": ("FRAMEIO_TOKEN", "fio-u-{url:64}"),
    "NOTION": ("NOTION_TOKEN", "ntn_{alnum:46}"),
    "AIRTABLE": ("AIRTABLE_TOKEN", "pat{alnum:14}.{hex:64}"),
    "HUBSPOT": ("HUBSPOT_TOKEN", "pat-na1-{uuid}"),
    "LAUNCHDARKLY": ("LAUNCHDARKLY_KEY", "sdk-{uuid}"),
    "CONTENTFUL": ("CONTENTFUL_TOKEN", "CFPAT-{url:43}"),
    "ADOBE": ("ADOBE_SECRET", "p8e-{alnum:32}"),
    "SENTRY_USER": ("SENTRY_DSN", "sntryu_{hex:64}"),
    "TWITTER": ("TWITTER_TOKEN", "AAAAAAAAAAAAAAAAAAAAA{alnum:80}"),
    "FACEBOOK": ("FACEBOOK_TOKEN", "EAAC{alnum:120}"),
    "MAPBOX": ("MAPBOX_TOKEN", "sk.eyJ{url:60}.{url:22}"),
    "GRAFANA_KEY": ("GRAFANA_TOKEN", "eyJrIjoi{alnum:72}=="),
    "ADAFRUIT": ("ADAFRUIT_KEY", "aio_{alnum:28}"),
    "OKTA": ("OKTA_TOKEN", "00{url:40}"),
    "DROPBOX": ("DROPBOX_TOKEN", "sl.{url:135}"),
    "LINEAR_OAUTH": ("LINEAR_KEY", "lin_oauth_{hex:64}"),
    "DOCKER_OAT": ("DOCKER_HUB_TOKEN", "dckr_oat_{url:32}"),
    "ASANA": ("ASANA_TOKEN", "1/{digits:16}:{alnum:32}"),
    "COINBASE": ("COINBASE_KEY", "organizations/{uuid}/apiKeys/{uuid}"),
    "DEFINED_NETWORKING": ("DEFINED_NETWORKING_KEY", "dnkey-{lower:26}-{lower:52}"),
    "GOCARDLESS": ("GOCARDLESS_TOKEN", "live_{alnum:40}"),
    "HF_ORG": ("HF_TOKEN", "api_org_{letters:34}"),
    "IBM_CLOUD": ("IBM_CLOUD_KEY", "ApiKey-{uuid}"),
    "INTRA42": ("INTRA42_SECRET", "s-s4t2ud-{hex:64}"),
    "MAILGUN_PUBLIC": ("MAILGUN_KEY", "pubkey-{hex:32}"),
    "MAXMIND": ("MAXMIND_KEY", "{alnum:6}_{alnum:29}_mmk"),
    "ONEPASSWORD": ("ONEPASSWORD_KEY", "A3-{upper:6}-{upper:11}-{upper:5}-{upper:5}-{upper:5}"),
    "RENDER": ("RENDER_KEY", "rnd_{alnum:32}"),
    "SENDBIRD": ("SENDBIRD_TOKEN", "sendbird_{hex:40}"),
    "SETTLEMINT": ("SETTLEMINT_TOKEN", "sm_pat_{alnum:16}"),
    "VERCEL": ("VERCEL_TOKEN", "vcp_{alnum:48}"),
    "ZENDESK": ("ZENDESK_TOKEN", "{alnum:40}"),
    "STRIPE_WEBHOOK": ("STRIPE_KEY", "whsec_{alnum:32}"),
    "KEYED_HEX": ("SECRET", "{hex:40}"),
    "KEYED_LOWER": ("SECRET", "{lower:32}"),
    "KEYED_MIXED": ("SECRET", "{alnum:40}"),
}
# The shapes a coverage audit against gitleaks' rules and detect-secrets' plugins found missed:
# scored per family like the others; in the labelled corpus they share a few templates (see
# `SCANNER_TEMPLATES`) so that the corpus' mix of decoys stays as it was.
AUDIT_SHAPES: dict[str, tuple[str, str]] = {
    "ARTIFACTORY_HEX": ("ARTIFACTORY_KEY", "AKCp{hex:69}"),
    "ARTIFACTORY_SHORT": ("ARTIFACTORY_KEY", "AKC{alnum:12}"),
    "ARTIFACTORY_REF": ("ARTIFACTORY_KEY", "cmVmd{alnum:59}"),
    "AWS_BEDROCK": ("AWS_BEDROCK_KEY", "ABSK{b64:132}"),
    "AIVEN": ("AIVEN_TOKEN", "AVNS_{alnum:24}"),
    "AUTHRESS": ("AUTHRESS_KEY", "sc_{lower:12}.{lower:5}.acc_{lower:16}.{b64:60}"),
    "AZURE_FUNCTION": ("AZURE_KEY", "{url:54}=="),
    "DATAFACTORY": ("AZURE_KEY", "IR@{uuid}@adf-orders-001@we@{b64:43}="),
    "BRAINTREE": ("BRAINTREE_TOKEN", "access_token$production${lower:16}"),
    "BRAINTREE_TOKENIZATION": ("BRAINTREE_TOKEN", "sandbox_{lower:8}_{lower:16}"),
    "CASTAI": ("CASTAI_KEY", "castai_v1_{alnum:64}_{alnum:8}"),
    "CHIEFTOOLS": ("CHIEFTOOLS_TOKEN", "ctp_{alnum:36}"),
    "CLAUDE_SESSION": ("CLAUDE_SESSION_URL", "https://claude.ai/code/session_{alnum:24}"),
    "CLICKHOUSE": ("CLICKHOUSE_KEY", "4b1d{alnum:38}"),
    "DJANGO": ("SECRET", "django-insecure-{alnum:50}"),
    "FACEBOOK_APP": ("FACEBOOK_TOKEN", "{digits:15}|{url:32}"),
    "FLUTTERWAVE_ENC": ("FLUTTERWAVE_KEY", "FLWSECK_TEST-{hex:12}"),
    "GITLAB_SESSION": ("GITLAB_SESSION", "_gitlab_session={lower:32}"),
    "HARNESS_ALNUM": ("HARNESS_TOKEN", "sat.{url:22}.{alnum:24}.{alnum:20}"),
    "HF_LETTERS": ("HF_TOKEN", "hf_{letters:34}"),
    "JWT_BASE64": ("JWT", "ZXlK{b64:120}"),
    "LANGSMITH": ("LANGSMITH_KEY", "lsv2_pt_{lower:32}_{lower:10}"),
    "MAILCHIMP_ALNUM": ("MAILCHIMP_KEY", "{lower:32}-us{digits:2}"),
    "NPM_LOWER": ("NPM_TOKEN", "npm_{lower:36}"),
    "NUGET_CONFIG": ("PASSWORD", "{alnum:16}"),
    "OKTA_BARE": ("OKTA_TOKEN", "00{url:40}"),
    "OPENROUTER": ("AI_API_KEY", "sk-or-v1-{hex:64}"),
    "PYPI_TEST": ("PYPI_TOKEN", "pypi-AgENdGVzdC5weXBpLm9yZw{url:80}"),
    "SIDEKIQ": ("SIDEKIQ_SECRET", "{hex:8}:{hex:8}"),
    "SIDEKIQ_URL": ("SIDEKIQ_SECRET", "{hex:8}:{hex:8}"),
    "SOFTLAYER_URL": ("SOFTLAYER_KEY", "{lower:64}"),
    "ANSIBLE_VAULT": ("ANSIBLE_VAULT", "{hex:80}\n{hex:40}"),
    "TELEGRAM_ANY": ("TELEGRAM_TOKEN", "{digits:9}:{url:35}"),
    "KEYED_B64": ("SECRET", "{b64:44}"),
    # gitleaks' vendor keyword rules whose value is short, digits only, letters only or a UUID
    # (`{alpha:24}` lowercase letters), a legacy Vault token, and detect-secrets' Artifactory
    # password (`{hexdigit}` one of 0-9A-F)
    "KEYED_ASANA_ID": ("SECRET", "{digits:16}"),
    "KEYED_DISCORD_ID": ("SECRET", "{digits:18}"),
    "KEYED_DROPBOX": ("SECRET", "{lower:15}"),
    "KEYED_LINKEDIN": ("SECRET", "{lower:14}"),
    "KEYED_SUMO_ID": ("SECRET", "su{alnum:12}"),
    "KEYED_CLOUDANT": ("SECRET", "{alpha:24}"),
    "KEYED_VENDOR_UUID": ("SECRET", "{uuid}"),
    "KEYED_VAULT_LEGACY": ("SECRET", "s.{alnum:24}"),
    "ARTIFACTORY_PASSWORD": ("ARTIFACTORY_KEY", "AP{hexdigit}{alnum:10}"),
}
SCANNER_SHAPES.update(AUDIT_SHAPES)
_SCANNER_VENDORS = ["datadog", "algolia", "fastly", "asana", "bitbucket", "cohere", "mistral",
                    "freshbooks", "finnhub", "kucoin", "sumologic", "travisci", "twitch",
                    "etsy", "lob", "mattermost", "rapidapi", "snyk", "zendesk", "codecov"]
_SCANNER_KEYWORDS = ["api_key", "app_key", "token", "secret", "client_secret", "access_token",
                     "auth", "key"]
# key names of the vendor keyword rules: ids as well as secret words
_ID_KEYWORDS = ["client_id", "key", "app_id", "access_id", "id", "api_key", "token"]
SCANNER_CONTEXTS: tuple[str, ...] = (
    "Use {V} for the deploy and rotate it after.",
    "export SERVICE_CREDENTIAL={V}",
    "{{\"service\": {{\"credential\": \"{V}\"}}}}",
    "auth failed with {V} (HTTP 401); retrying",
    "config:\n  provider: example\n  value: {V}\n",
    "curl -H 'Authorization: Bearer {V}' https://api.example.com/v1",
)
_KEYED_CONTEXTS = ("{V}", "config.yaml: {V}\n", "  {V},\n")
# Families whose value needs a frame around it: the scheme (`SSWS`), the user
# (`agent@example.com/token:`) or the key it is assigned to (gitleaks' keyword rules).
SCANNER_FRAMES: dict[str, str] = {
    "OKTA": "Authorization: SSWS {V}",
    "ZENDESK": "{EMAIL}/token:{V}",
    "KEYED_HEX": "{vendor}_{keyword} = \"{V}\"",
    "KEYED_LOWER": "{vendor}{Keyword}: {V}",
    "KEYED_MIXED": "\"{vendor}-{keyword}\": \"{V}\"",
    "KEYED_B64": "{vendor}_{keyword}: {V}",
    "AZURE_FUNCTION": "https://orders.azurewebsites.net/api/checkout?code={V}",
    "NUGET_CONFIG": "<add key=\"ClearTextPassword\" value=\"{V}\" />",
    "SIDEKIQ": "BUNDLE_ENTERPRISE__CONTRIBSYS__COM={V}",
    "SIDEKIQ_URL": "https://{V}@gems.contribsys.com/",
    "SOFTLAYER_URL": "https://api.softlayer.com/soap/v3/{V}",
    "ANSIBLE_VAULT": "$ANSIBLE_VAULT;1.1;AES256\n{V}",
    "KEYED_ASANA_ID": "asana_{idkey}: {V}",
    "KEYED_DISCORD_ID": "DISCORD_{IDKEY}={V}",
    "KEYED_DROPBOX": "\"dropbox_{idkey}\": \"{V}\"",
    "KEYED_LINKEDIN": "linkedin{Idkey} = {V}",
    "KEYED_SUMO_ID": "sumo_{idkey}: {V}",
    "KEYED_CLOUDANT": "{cloudant_key}: {V}",
    "KEYED_VENDOR_UUID": "{uuid_vendor}_{idkey} = \"{V}\"",
    "KEYED_VAULT_LEGACY": "vault_{keyword}: {V}",
}
_SHAPE_FIELD = re.compile(r"\{(\w+)(?::(\d+))?\}")


def _letters(rng: random.Random, n: int) -> str:
    while True:
        value = _rand(rng, string.ascii_letters, n)
        if value.lower() != value and value.upper() != value:
            return value


def _shape_value(rng: random.Random, field: str, n: int) -> str:
    if field == "hex":
        return _hex_mixed(rng, n)
    if field == "HEX":
        return _hex_mixed(rng, n).upper()
    if field == "alnum":
        return _mixed(rng, _ALNUM, n)
    if field == "url":
        return _mixed(rng, _URLSAFE, n)
    if field == "b64":
        return _mixed(rng, _B64, n)
    if field in ("lower", "upper"):
        alphabet = string.ascii_lowercase + string.digits
        while True:
            value = _rand(rng, alphabet, n)
            if any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
                return value.upper() if field == "upper" else value
    if field == "letters":
        return _letters(rng, n)
    if field == "digits":
        return str(rng.randint(1, 9)) + _rand(rng, string.digits, n - 1)
    if field == "uuid":
        return "-".join(_hex_mixed(rng, k) for k in (8, 4, 4, 4, 12))
    if field == "alpha":
        return _rand(rng, string.ascii_lowercase, n)
    if field == "hexdigit":
        return rng.choice("0123456789ABCDEF")
    if field == "age":
        return _rand(rng, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", n)
    raise ValueError(f"unknown shape field {field!r}")


def _draw(family: str, rng: random.Random) -> str:
    return "".join(_shape_value(rng, m.group(1), int(m.group(2) or 0)) if m else part
                   for part in re.split(r"(\{\w+(?::\d+)?\})", SCANNER_SHAPES[family][1])
                   for m in [_SHAPE_FIELD.fullmatch(part)])


_FAMILY_SHAPES: list[re.Pattern[str]] = []


def _is_token_shape(value: str) -> bool:
    """Does a whole value have the shape of a prefixed token family (`YC` and 38 characters is
    a Yandex key)? Such a value is that family's, not a keyed secret's."""
    if not _FAMILY_SHAPES:
        from feedback_pipeline.core.redaction.secret_rules import TOKEN_FAMILIES
        _FAMILY_SHAPES.extend(re.compile(f.pattern) for f in TOKEN_FAMILIES if not f.value_only)
    return any(p.fullmatch(value) for p in _FAMILY_SHAPES)


def scanner_value(family: str, rng: random.Random) -> str:
    """A fresh value of a scanner family (the secret itself, without its frame). A keyed
    secret is drawn again in the rare case that it has a token family's shape."""
    value = _draw(family, rng)
    while family.startswith("KEYED") and _is_token_shape(value):
        value = _draw(family, rng)
    return value


def scanner_samples(family: str, n: int, seed: int) -> list[tuple[str, list[Span]]]:
    """n fragments planting one value of `family` each (in its frame, if it has one), cycling
    over the contexts."""
    rng = random.Random(seed)
    frame = _parse(SCANNER_FRAMES.get(family, "{V}").replace("{V}", "{" + family + "}"))
    contexts = _KEYED_CONTEXTS if family.startswith("KEYED") else SCANNER_CONTEXTS
    out = []
    for i in range(n):
        fragment, spans = _render(rng, frame)
        context = contexts[i % len(contexts)].replace("{{", "{").replace("}}", "}")
        at = context.index("{V}")
        out.append((context.replace("{V}", fragment), [(s + at, e + at, k) for s, e, k in spans]))
    return out


GENERATORS.update({family: (lambda r, f=family: scanner_value(f, r)) for family in SCANNER_SHAPES})
GENERATORS.update({
    "vendor": lambda r: r.choice(_SCANNER_VENDORS),
    "keyword": lambda r: r.choice(_SCANNER_KEYWORDS),
    "Keyword": lambda r: "".join(w.title() for w in r.choice(_SCANNER_KEYWORDS).split("_")),
    "idkey": lambda r: r.choice(_ID_KEYWORDS),
    "IDKEY": lambda r: r.choice(_ID_KEYWORDS).upper(),
    "Idkey": lambda r: "".join(w.title() for w in r.choice(_ID_KEYWORDS).split("_")),
    "uuid_vendor": lambda r: r.choice(["messagebird", "sendbird", "kucoin", "squarespace",
                                       "hubspot"]),
    "cloudant_key": lambda r: r.choice(["cloudant_api_key", "CLOUDANT_APIKEY",
                                        "cloudant_password", "cloudantApiKey"]),
})
_KIND_OF.update({family: kind for family, (kind, _shape) in SCANNER_SHAPES.items()})
ENTITY_KINDS = ENTITY_KINDS + tuple(dict.fromkeys(
    kind for kind, _shape in SCANNER_SHAPES.values() if kind not in ENTITY_KINDS))
# One labelled-corpus template per family: its frame in one of the contexts, in turn; the
# audit's families six to a template, one line each.
def _scanner_line(i: int, family: str) -> str:
    return (_KEYED_CONTEXTS if family.startswith("KEYED") else SCANNER_CONTEXTS)[i % 3].replace(
        "{V}", SCANNER_FRAMES.get(family, "{V}").replace("{V}", "{" + family + "}"))


_AUDIT_FAMILIES = list(AUDIT_SHAPES)
SCANNER_TEMPLATES: tuple[str, ...] = tuple(
    _scanner_line(i, family) for i, family in enumerate(SCANNER_SHAPES)
    if family not in AUDIT_SHAPES) + tuple(
    "\n".join(_scanner_line(i + j, family) for j, family in enumerate(_AUDIT_FAMILIES[i:i + 6]))
    for i in range(0, len(_AUDIT_FAMILIES), 6))
TEMPLATES = TEMPLATES + SCANNER_TEMPLATES


FILLER: tuple[str, ...] = (
    "@@ -{line},7 +{line},9 @@ def retry(fn, attempts=3):\n-    for i in range(attempts):\n"
    "+    for attempt in range(1, attempts + 1):\n+        delay = min(2 ** attempt, 30)\n"
    "         try:\n             return fn()",
    "diff --git a/{path} b/{path}\nindex {COMMIT7}..{COMMIT7} 100644\n--- a/{path}\n+++ b/{path}",
    "def test_checkout_total(client, cart):\n    resp = client.post('/api/v2/checkout', "
    "json=cart)\n    assert resp.status_code == {status}\n    assert resp.json()['total'] == 4200",
    "func (h *Handler) Login(w http.ResponseWriter, r *http.Request) {{\n\tctx, cancel := "
    "context.WithTimeout(r.Context(), 5*time.Second)\n\tdefer cancel()\n}}",
    "export function Cart({{ items }}: Props) {{\n  const total = items.reduce((s, i) => s + "
    "i.price * i.qty, 0);\n  return <Summary total={{total}} />;\n}}",
    "Traceback (most recent call last):\n  File \"{path}\", line {line}, in handle\n    "
    "result = self.client.fetch(order_id)\nTimeoutError: read timed out after {ms} ms",
    "=================== {count} passed, 2 failed, 3 skipped in {ms}.42s ===================",
    "FAILED tests/test_api.py::test_refund_idempotent - AssertionError: expected 1 refund, got 2",
    "npm WARN deprecated request@2.88.2: request has been deprecated\nadded {count} packages "
    "in {ms}ms",
    "Step 4/11 : RUN pip install --no-cache-dir -r requirements.txt\n ---> Running in "
    "{md5}\nCollecting fastapi=={version}",
    "kubectl rollout status deploy/api -n prod\nWaiting for deployment \"api\" rollout to "
    "finish: 2 of 3 updated replicas are available...",
    "Warning  BackOff  {ms}s (x{line} over 1h)  kubelet  Back-off restarting failed container "
    "{pod}",
    "The retry budget should be per request, not global. Otherwise one slow dependency starves "
    "every other caller. Could we move the counter into the request context?",
    "I think this is correct, but the naming is confusing: `attempts` counts retries, not "
    "attempts. Suggest renaming to `max_retries` and adding a docstring.",
    "This breaks backwards compatibility for clients on {version}; please gate it behind the "
    "feature flag and add a migration note to CHANGELOG.md.",
    "Can you add a test for the empty cart case? The current tests only cover {count} items.",
    "LGTM after the nit about logging. We should never log the full request body here since it "
    "may contain customer data.",
    "The flaky test is caused by relying on dict ordering in the fixture; sort the keys before "
    "comparing or use a set.",
    "[{date}] INFO  worker.py:{line} processed batch {build} in {ms} ms (rows={count})",
    "[{date}] WARN  db.pool: connection pool exhausted (size=20, waiting={line})",
    "[{date}] ERROR api.handlers: upstream returned {status} for GET /v1/orders/{uuid}",
    "##[group]Run actions/setup-python@v5\nwith:\n  python-version: {version}\n  cache: pip\n"
    "##[endgroup]",
    "SELECT o.id, o.total FROM orders o JOIN customers c ON c.id = o.customer_id WHERE "
    "o.created_at >= '{date}' LIMIT {count};",
    "Coverage: {line} statements, 87% covered. Missing: {path} lines {line}-{line}",
    "    at com.example.payments.RetryPolicy.execute(RetryPolicy.java:{line})\n    at "
    "com.example.payments.Client.charge(Client.java:{line})",
    "Benchmark: p50 {ms} ms, p99 {ms} ms, throughput {count} req/s on c5.xlarge",
)


def _parse(template: str) -> list[tuple[bool, str]]:
    parts, pos = [], 0
    for m in re.finditer(r"\{\{|\}\}|\{(\w+)\}", template):
        if m.group(1) is None:
            parts.append((False, template[pos:m.start()] + m.group(0)[0]))
        else:
            parts.append((False, template[pos:m.start()]))
            parts.append((True, m.group(1)))
        pos = m.end()
    parts.append((False, template[pos:]))
    return [p for p in parts if p[0] or p[1]]


_PARSED = [_parse(t) for t in TEMPLATES]
_PARSED_FILLER = [_parse(t) for t in FILLER]


def render_fragment(rng: random.Random, index: int | None = None, *,
                    filler: bool = False) -> tuple[str, list[Span]]:
    """One template filled with fresh values, and the spans of the planted values."""
    templates = _PARSED_FILLER if filler else _PARSED
    return _render(rng, templates[rng.randrange(len(templates)) if index is None else index])


def _render(rng: random.Random, parts: list[tuple[bool, str]]) -> tuple[str, list[Span]]:
    out, spans, pos = [], [], 0
    for is_field, value in parts:
        if is_field:
            text = GENERATORS[value](rng)
            kind = _KIND_OF.get(value, value)
            if kind in ENTITY_KINDS:
                spans.append((pos, pos + len(text), kind))
        else:
            text = value
        out.append(text)
        pos += len(text)
    return "".join(out), spans


def _assemble(fragments: list[tuple[str, list[Span]]]) -> tuple[str, list[Span]]:
    out, spans, pos = [], [], 0
    for text, frag_spans in fragments:
        spans.extend((s + pos, e + pos, k) for s, e, k in frag_spans)
        out.append(text)
        pos += len(text) + 1
    return "\n".join(out), spans


def make_labelled_corpus(n_texts: int, seed: int, *, filler_share: float = 0.0
                         ) -> tuple[list[str], list[list[Span]]]:
    """n texts of about 1-2 KB with every planted value's (start, end, kind) span.

    With the default `filler_share` of 0 every fragment plants values (about 11 per KB: a
    stress test for accuracy); `filler_share` is the probability that a fragment is plain code,
    diff, log or review prose instead (still full of decoys).
    """
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n_texts):
        target = rng.randint(1000, 2000)
        fragments, size = [], 0
        while size < target:
            fragment = render_fragment(rng, filler=rng.random() < filler_share)
            fragments.append(fragment)
            size += len(fragment[0]) + 1
        text, spans = _assemble(fragments)
        texts.append(text)
        labels.append(spans)
    return texts, labels


REALISTIC_FILLER_SHARE = 0.85


def iter_texts(n_texts: int, seed: int, *, filler_share: float = REALISTIC_FILLER_SHARE,
               pool_size: int = 4000, labelled: bool = False
               ) -> Iterator[str] | Iterator[tuple[str, list[Span]]]:
    """Stream n texts recombined from a pool of rendered fragments: fast and memory-flat.

    The default mix (85% plain fragments) plants about 2 values per KB, closer to real
    code-review traces than the accuracy corpus.
    """
    rng = random.Random(seed)
    planted = [render_fragment(rng, i % len(_PARSED)) for i in range(pool_size)]
    plain = [render_fragment(rng, i % len(_PARSED_FILLER), filler=True) for i in range(pool_size)]
    for _ in range(n_texts):
        k = rng.randint(7, 12)
        n_plain = sum(rng.random() < filler_share for _ in range(k))
        fragments = rng.choices(plain, k=n_plain) + rng.choices(planted, k=k - n_plain)
        rng.shuffle(fragments)
        if labelled:
            yield _assemble(fragments)
        else:
            yield "\n".join(f[0] for f in fragments)


def make_trace_frame(texts: list[str], seed: int, *, id_prefix: str = "trace") -> pd.DataFrame:
    """Trace rows (the design's schema, text columns only) built from corpus texts.

    Each trace takes one text as its context and slices of others as prompt, two candidates and
    an approved answer, so identifiers recur across fields as they do in real traces.
    """
    rng = random.Random(seed)
    n = len(texts)
    rows = []
    for i, context in enumerate(texts):
        other = texts[(i + 1) % n] if n else ""
        cut = other.find("\n", len(other) // 3)
        prompt = other[: cut if cut > 0 else len(other)]
        lines = context.splitlines()
        rows.append({
            "trace_id": f"{id_prefix}-{i:07d}",
            "prompt": prompt,
            "context": context,
            "candidates": [
                {"candidate_id": "a", "model_id": "model-a",
                 "generation": json.dumps({"temperature": 0.2, "max_tokens": 512}),
                 "text": "\n".join(lines[: max(1, len(lines) // 3)])},
                {"candidate_id": "b", "model_id": "model-b",
                 "generation": json.dumps({"temperature": 0.7, "note": lines[-1]}),
                 "text": "\n".join(lines[len(lines) // 2:])},
            ],
            "approved_answer": lines[0] if rng.random() < 0.5 else None,
            "extra_json": json.dumps({"ticket": lines[min(1, len(lines) - 1)]}),
        })
    return pd.DataFrame(rows)


def score_spans(gold: list[list[Span]], predicted: list[list[Span]], *,
                kinds_must_match: bool = True) -> pd.DataFrame:
    """Recall and precision per entity type.

    A planted value is recalled when one predicted span covers all of it (a partial cover still
    leaks the rest); a predicted span is correct when it overlaps a planted value. With
    `kinds_must_match` both also need the same kind; without it, any planted value counts,
    which is how tools with other kind names are scored.
    """
    found: dict[str, int] = {}
    planted: dict[str, int] = {}
    correct: dict[str, int] = {}
    flagged: dict[str, int] = {}
    for gold_spans, pred_spans in zip(gold, predicted, strict=True):
        for gs, ge, gk in gold_spans:
            planted[gk] = planted.get(gk, 0) + 1
            if any(ps <= gs and pe >= ge and (pk == gk or not kinds_must_match)
                   for ps, pe, pk in pred_spans):
                found[gk] = found.get(gk, 0) + 1
        for ps, pe, pk in pred_spans:
            flagged[pk] = flagged.get(pk, 0) + 1
            if any(ps < ge and gs < pe and (pk == gk or not kinds_must_match)
                   for gs, ge, gk in gold_spans):
                correct[pk] = correct.get(pk, 0) + 1
    kinds = sorted(set(planted) | set(flagged))
    return pd.DataFrame({
        "kind": kinds,
        "planted": [planted.get(k, 0) for k in kinds],
        "recalled": [found.get(k, 0) for k in kinds],
        "flagged": [flagged.get(k, 0) for k in kinds],
        "correct": [correct.get(k, 0) for k in kinds],
        "recall": [found.get(k, 0) / planted[k] if planted.get(k) else float("nan")
                   for k in kinds],
        "precision": [correct.get(k, 0) / flagged[k] if flagged.get(k) else float("nan")
                      for k in kinds],
    })


# ---- per-family samples (issue 17) --------------------------------------------------------------

TEMPLATE_FAMILIES: tuple[str, ...] = tuple(k for k in NEW_FAMILIES if k[0].isupper()) \
    + ("CLI_PASSWORD",)


def family_template_indexes(family: str) -> list[int]:
    """Indexes (into TEMPLATES) of the issue-17 templates that plant `family`."""
    field = "{" + family + "}"
    return [i for i in _NEW_TEMPLATE_RANGE if field in TEMPLATES[i]]


def decoy_template_indexes() -> list[int]:
    """Issue-17 templates that plant nothing: benign look-alikes only."""
    return [i for i in _NEW_TEMPLATE_RANGE
            if not any(is_field and (name[:1].isupper())
                       for is_field, name in _PARSED[i])]


def template_samples(family: str, n: int, seed: int) -> list[tuple[str, list[Span]]]:
    """n fragments planting a template family (fresh values each), cycling over its
    templates."""
    rng = random.Random(seed)
    indexes = family_template_indexes(family)
    return [render_fragment(rng, indexes[i % len(indexes)]) for i in range(n)]


def decoy_samples(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    indexes = decoy_template_indexes()
    return [render_fragment(rng, indexes[i % len(indexes)])[0] for i in range(n)]


# ---- context families: env lines, prose passwords, name spellings, known values ------------------

_ENV_CONTEXTS = ("PGPASSWORD={V} psql -h db.internal -U app", "SECRET_KEY_BASE={V}\nRAILS_ENV=prod",
                 "export ORDERS_DB_PASSWORD={V}", "MYSQL_ROOT_PASSWORD={V} docker compose up",
                 "  - REDIS_PASS={V}", "DJANGO_SECRET_KEY={V} ./manage.py runserver")
_PROSE_CONTEXTS = ("The password is {V} until Friday.", "my passphrase was {V}, please reset",
                   "pw: {V}", "the new password will be {V} after rotation",
                   "Use passcode {V} on the door panel")
# a key stated in prose, not assigned: a secret word or a vendor's name, then a verb
_PROSE_KEY_CONTEXTS = ("The API token is {V} for staging.", "our secret key was {V}, rotate it",
                       "the access token is now {V}", "Auth token is: {V} (expires Monday)",
                       "the service credentials are {V}")
_PROSE_VENDOR_CONTEXTS = ("the heroku api key is {V}", "Our HubSpot key is {V}, rotate it",
                          "sendbird app token was {V}.", "squarespace key {V} in the notes")
_NAME_CONTEXTS = ("Ping {V} about the rollout.", "cc {V}", "Reviewed-by: {V}",
                  "@{V} can you take this one?", "assigned to {V} (on call)")
_KNOWN_CONTEXTS = ("DATABASE_URL=postgres://admin:{V}@db.internal/app\nIf it fails, ask for "
                   "{V} again.", "mysql -u root -p{V} orders\nThe value {V} is also in vault.",
                   "redis-cli -h cache -a {V} ping\nContact {V} directly.")


def _name_spelling(rng: random.Random) -> str:
    from feedback_pipeline.core.redaction import ascii_fold
    term = rng.choice([t for t in DENY_TERMS if " " in t])
    words = term.split()
    rest, last = " ".join(words[:-1]), words[-1]
    return rng.choice([f"{last}, {rest}", f"{last} {rest}", ascii_fold(term), "-".join(words),
                       "".join(words), "".join(words).lower(), last if len(last) > 2 else term,
                       term.upper()])


CONTEXT_FAMILIES: dict[str, tuple[str, tuple[str, ...], Callable[[random.Random], str]]] = {
    "ENV_SECRET": ("SECRET", _ENV_CONTEXTS, _password),
    "PROSE_PASSWORD": ("PASSWORD", _PROSE_CONTEXTS, _password),
    "PROSE_KEY": ("SECRET", _PROSE_KEY_CONTEXTS,
                  lambda rng: _mixed(rng, string.ascii_letters + string.digits, 32)),
    "PROSE_VENDOR_KEY": ("SECRET", _PROSE_VENDOR_CONTEXTS, lambda rng: str(
        uuid.UUID(int=rng.getrandbits(128), version=4))),
    "NAME_VARIANT": ("NAME", _NAME_CONTEXTS, _name_spelling),
    "KNOWN_VALUE": ("PASSWORD", _KNOWN_CONTEXTS, _password),
}


def context_samples(family: str, n: int, seed: int) -> list[tuple[str, list[Span]]]:
    """n fragments of a context family, every occurrence of the value labelled (for
    KNOWN_VALUE the second occurrence stands with no context at all)."""
    kind, contexts, make = CONTEXT_FAMILIES[family]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        value = make(rng).rstrip(".,;:!?")
        parts = contexts[i % len(contexts)].split("{V}")
        text, spans = parts[0], []
        for part in parts[1:]:
            spans.append((len(text), len(text) + len(value), kind))
            text += value + part
        out.append((text, spans))
    return out


FAMILIES: tuple[str, ...] = TEMPLATE_FAMILIES + tuple(SCANNER_SHAPES) + tuple(CONTEXT_FAMILIES)


def family_kind(family: str) -> str:
    """The redactor kind a family's values are labelled with."""
    if family in SCANNER_SHAPES:
        return SCANNER_SHAPES[family][0]
    if family in CONTEXT_FAMILIES:
        return CONTEXT_FAMILIES[family][0]
    return _KIND_OF.get(family, family)


def family_samples(family: str, n: int, seed: int) -> list[tuple[str, list[Span]]]:
    """n fragments planting `family` (fresh values each), cycling over its contexts."""
    if family in SCANNER_SHAPES:
        return scanner_samples(family, n, seed)
    if family in CONTEXT_FAMILIES:
        return context_samples(family, n, seed)
    return template_samples(family, n, seed)
