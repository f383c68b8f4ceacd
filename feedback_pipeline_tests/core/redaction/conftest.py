"""Shared cases for the redaction package's tests: labelled positives and benign
look-alikes per detector family, and small trace builders."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from feedback_pipeline.core.redaction import (
    HYPERSCAN_AVAILABLE,
    Redactor,
    TokenTable,
)
from feedback_pipeline.synth.secrets_corpus import (
    DENY_TERMS,
)

ENGINES = ["python", pytest.param("hyperscan", marks=pytest.mark.skipif(
    not HYPERSCAN_AVAILABLE, reason="hyperscan not installed"))]


SEED_TEXT = ("Engineer ENG-918204 emailed jane.doe@example.com about commit abc123def456. "
             "Contact ENG-918204 only through incident channel.")


TOKEN = re.compile(r"<([A-Z][A-Z0-9_]*)_([0-9a-f]+)>")


@pytest.fixture(params=ENGINES)
def redactor(request):
    return Redactor(DENY_TERMS, engine=request.param)


def redact(redactor, text):
    return redactor.redact_text(text, TokenTable())


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")


POSITIVE = [
    # (text around the value, value, kind)
    ("reach me at {} today", "jane.doe+ci@example.com", "EMAIL"),
    ("reach me at {} today", "Jane.Doe@Example.COM", "EMAIL"),
    ("<a href='mailto:{}'>", "ops@corp.example.org", "EMAIL"),
    ("From: Jane <{}>", "jane@example.co.uk", "EMAIL"),
    ("owner {} approved", "ENG-4411", "ENGINEER"),
    ("see commit {} for the fix", "3f9a2c1", "COMMIT"),
    ("Reverts {}.", "9fceb02d0ae598e95dc970b74767f19372d61af8", "COMMIT"),
    ("cherry-picked from {} on main", "a1b2c3d4e5", "COMMIT"),
    ("HEAD is now at {} Merge", "4e5f6a7", "COMMIT"),
    ("uses: actions/checkout@{}", "b4ffde65f46336ab88eb53be808477a3936bae11", "COMMIT"),
    ("bare hash {} regressed", "abc123def456", "COMMIT"),
    ("call {} now", "+44 20 7946 0958", "PHONE"),
    ("call {} now", "+1 (415) 555-0134", "PHONE"),
    ("call {} now", "(415) 555-0134", "PHONE"),
    ("call {} now", "415-555-0134", "PHONE"),
    ("call {} now", "415.555.0134", "PHONE"),
    ("call {} now", "+81-3-1234-5678", "PHONE"),
    ("host {}:5432 down", "10.20.30.40", "IPV4"),
    ("peer {} reset", "2001:db8::8a2e:370:7334", "IPV6"),
    ("peer {} reset", "fe80:0:0:0:202:b3ff:fe1e:8329", "IPV6"),
    ("peer {} reset", "::ffff:192.0.2.128", "IPV6"),
    ("card {} declined", "4111 1111 1111 1111", "CARD"),
    ("card {} declined", "5500-0000-0000-0004", "CARD"),
    ("card {} declined", "378282246310005", "CARD"),
    ("card {} 10 times", "4111111111111111", "CARD"),
    ("card {} 2024-05-01", "4111 1111 1111 1111", "CARD"),
    ("card {} declined", "3782 822463 10005", "CARD"),
    ("AWS_ACCESS_KEY_ID={}", "AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY"),
    ("aws_secret_access_key = {}", AWS_SECRET, "AWS_SECRET_KEY"),
    ("token {}", "ghp_" + "aB3" * 12, "GITHUB_TOKEN"),
    ("token {}", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF", "GITHUB_TOKEN"),
    ("slack {}", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "SLACK_TOKEN"),
    ("stripe {}", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "STRIPE_KEY"),
    ("stripe {}", "rk_live_51H8abcdEFGH1234ijkl", "STRIPE_KEY"),
    ("maps {}", "AIzaSyD-1234567890abcdefghijklmnopqrstu", "GOOGLE_API_KEY"),
    ("key {}", "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vX7zB9cD1fG3hJ5kL7", "OPENAI_KEY"),
    ("key {}", "sk-" + "Ab1" * 16, "OPENAI_KEY"),
    ("key {}", "sk-ant-api03-" + "Ab1_" * 20 + "AA", "ANTHROPIC_KEY"),
    ("hf login {}", "hf_" + "aB1" * 11 + "x", "HF_TOKEN"),
    ("Authorization: Bearer {}", JWT, "JWT"),
    ("Authorization: Bearer {}", "9f8E7d6C5b4A3f2E1d0C", "SECRET"),
    ("DB_PASSWORD={}", "hunter2x9", "SECRET"),
    ("password: \"{}\"", "correct horse battery staple", "SECRET"),
    ("api_key = '{}'", "abcd1234", "SECRET"),
    ("client_secret: {}", "Zx9-Qw8-Er7", "SECRET"),
    ('{{"token": "{}"}}', "tok_7f3a9b", "SECRET"),
    ("mysql --password={} -h db", "Sup3rS3cret", "SECRET"),
    ("postgres://app:{}@db.internal:5432/orders", "s3cr3t!Pw", "PASSWORD"),
    ("redis://:{}@cache.internal:6379/0", "Zm9vYmFy9", "PASSWORD"),
    ("reviewed by {}.", "Zoë Müller", "NAME"),
    ("reviewed by {}.", "ZOË MÜLLER", "NAME"),
    ("reviewed by {}.", "josé", "NAME"),
    ("reviewed by {}.", "Jane\nDoe", "NAME"),
]


NEGATIVE = [
    "release v1.2.3 on Python 3.11.7 and node 20.11.1, build 10.0.19045.3693",
    "postgres listens on :5432 and the api on port 8080; HTTP 404 then 503",
    "deployed 2024-05-01T12:30:45Z, window 05/01/2024, took 1234 ms",
    "request id 550e8400-e29b-41d4-a716-446655440000 and 550E8400-E29B-41D4-A716-446655440000",
    "md5sum d41d8cd98f00b204e9800998ecf8427e and sha256:" + "ab12" * 16,
    "order 4111111111111112 and invoice 1234567812345678 (fail Luhn)",
    "luhn-valid but no card network: 9111111111111111 and 1111111111111117",
    "paths /var/log/app/worker-3.log src/payments/retry.py:142 C:\\build\\setup.ps1",
    "lines 120-145, timestamp 1714567890123, 12-digit number 123456789012",
    "hex word deadbeefcafe and 13 hex abc123def4567 and 0x80070005",
    "std::vector<int> x; y = a[1::2]; Foo::Bar; 12:30:45; mac 00:1a:2b:3c:4d:5e",
    "listening on 0.0.0.0:8080 and 127.0.0.1, loopback ::1",
    "scikit-learn and sk-learn-compatible-estimator-wrapper and hf_hub_download",
    "ghp_short, AKIA12, xoxb, sk_live_, AIza, eyJhbGciOi, -----BEGIN PUBLIC KEY-----",
    "The token count is 2048; max_tokens: 512; tokenizer: cl100k_base",
    "password: <your-password> and ${DB_PASSWORD} and $DB_PASSWORD and password: required",
    "password = settings.db_password; secret_name: prod-db; password_hash column",
    "Basic auth is disabled. Bearer tokens rotate hourly.",
    "https://example.com/path?q=1 and git@ not an email, @pytest.fixture, lodash@4.17.21",
    "Josefina and Janet Doerr and Zoëlla reviewed it; eng-918204 is lowercase; LENG-12",
    "commit message: fix typo; revert the change; merge when green",
]


def traces_frame():
    return pd.DataFrame({
        "trace_id": ["t1", "t2"],
        "prompt": ["Why did ENG-918204 revert abc123def456?", "Ask jane.doe@example.com"],
        "context": ["ENG-918204 wrote it; call +44 20 7946 0958", None],
        "candidates": [
            [{"candidate_id": "a", "model_id": "m1",
              "generation": json.dumps({"temperature": 0.2, "note": "for ENG-918204"}),
              "text": "Ping ENG-918204 and ENG-1"},
             {"candidate_id": "b", "model_id": "m2", "generation": "{}", "text": "no ids"}],
            np.array([{"candidate_id": "a", "model_id": "m1", "generation": None,
                       "text": "jane.doe@example.com"}], dtype=object),
        ],
        "approved_answer": [None, "Mail jane.doe@example.com, not ENG-1"],
        "extra_json": [json.dumps({"ticket": "from José", "n": 1}), None],
        "source_line": [1, 2],
    })


JWT_AT_START = ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
                "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")


ISSUE17_POSITIVE = [
    ("token glpat-{} ok", "xK9mN2pQ4rS6tU8vW0yZ", "GITLAB_TOKEN"),
    ("npmrc _authToken={}", "npm_" + "aB3dE5fG7h" * 3 + "iJ1kL2", "NPM_TOKEN"),
    ("vault token {}", "hvs.CAESIJ2kL9mNoPqRsTuVwXyZ0123", "VAULT_TOKEN"),
    ("send {}", "SG." + "aB3_" * 5 + "cD" + "." + "eF5-gH7" * 6 + "i", "SENDGRID_KEY"),
    ("hook {} 200", "https://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/aB3cD4eF5gH6iJ7kL8mN9oP0",
     "SLACK_WEBHOOK"),
    ("stripe {}", "whsec_" + "aB3cD4eF5g" * 3, "STRIPE_KEY"),
    ("gcloud {}", "ya29.a0AfH6SMB" + "xY9z" * 10, "GCP_OAUTH_TOKEN"),
    ("Account {} sent", "AC" + "0a1b2c3d" * 4, "TWILIO_KEY"),
    ("dsn https://{}@o1.ingest.sentry.io/2", "0a1b2c3d" * 4, "SENTRY_DSN"),
    ("mysql -u root -p{} db", "Hunter2x", "PASSWORD"),
    ("redis-cli -h cache -a '{}' ping", "s3cret pass", "PASSWORD"),
    ("curl -fsS -u admin:{} https://x", "Pa55w0rd", "PASSWORD"),
    ("docker login -u ci --password {} reg", "Tok3nValue", "PASSWORD"),
    ("PGPASSWORD={} psql", "Xy7pQr2z", "SECRET"),
    ("SECRET_KEY_BASE={}", "a1b2c3d4e5f6a7b8c9d0", "SECRET"),
    ("export APP_API_KEY={}", "Zz9yXx8wVv", "SECRET"),
    ("the password is {}.", "Tr0ub4dor", "PASSWORD"),
    ("pw: {}", "hunter22", "PASSWORD"),
    ("IBAN {} please", "DE89 3704 0044 0532 0130 00", "IBAN"),
    ("IBAN {} please", "GB82WEST12345698765432", "IBAN"),
    ("SSN {}", "123-45-6789", "SSN"),
    ("ring {} now", "030 1234567", "PHONE"),
    ("ring {} now", "03-1234-5678", "PHONE"),
    ("ring {} now", "020 7946 0958", "PHONE"),
    ("ring {} now", "07700 900123", "PHONE"),
    ("ring {} now", "0049 30 1234567", "PHONE"),
    ("mail {} now", "jane [at] example [dot] com", "EMAIL"),
    ("mail {} now", "jane @ example.com", "EMAIL"),
    ("mail {} now", "jane＠example.com", "EMAIL"),
    ("mail {} now", "jane%40example.com", "EMAIL"),
    ("mail {} now", "jane@bücher.de", "EMAIL"),
    ("node ip-{}.ec2.internal", "10-1-2-3", "IPV4"),
    ("node {}.internal", "10-1-2-3", "IPV4"),
    ("AccountName=a;AccountKey={};EndpointSuffix=x", "q" * 20 + "Zx9+/" * 10 + "==", "AZURE_KEY"),
    ("https://a.blob.core.windows.net/c?sv=1&sig={}", "aB3%2Bcd4%2Fef5%3Dgh6", "SAS_SIGNATURE"),
    # a signature that starts like a bare Okta token (`00` and forty characters)
    ("https://a.blob.core.windows.net/c?sv=1&sig={} 403",
     "00W5mWTd4v0Ps1ZoJ1S4kqyEpieFH5AiruVW7jkOsoI%3D", "SAS_SIGNATURE"),
    ('{{"auths": {{"r": {{"auth": "{}"}}}}}}', "Y2k6SHVudGVyMng=", "DOCKER_AUTH"),
]


# Shapes a coverage audit against gitleaks' rules and detect-secrets' plugins found missed
# (values written here from the documented alphabet and length).
AUDIT_POSITIVE = [
    ("pasted {} by mistake", "ABIA" + "Q7X2KD9LMP4RT6WZ", "AWS_ACCESS_KEY"),
    ("pasted {} by mistake", "ACCA" + "7KQ2MZ4XD9PL3RTW", "AWS_ACCESS_KEY"),
    ("token {} ok", "glpat-" + "aB3dE5fG7h" * 2 + "J9kL1mN" + ".01" + "a2b3c4d", "GITLAB_TOKEN"),
    ("token {} ok", "glffct-" + "xK9mN2pQ4rS6tU8vW0yZ", "GITLAB_TOKEN"),
    ("Cookie: {}; path=/", "_gitlab_session=" + "4gmx5qie" * 4, "GITLAB_SESSION"),
    ("stripe {}", "rk_prod_" + "aB3dE5fG7h" * 3, "STRIPE_KEY"),
    ("twilio {} rejected", "SK" + "k151kiy1" * 4, "TWILIO_KEY"),
    ("hf {} login", "hf_" + "aBcDeFgHiJ" * 3 + "kLmN", "HF_TOKEN"),
    ("npmrc {}", "npm_" + "chhdr0xcu" * 4, "NPM_TOKEN"),
    ("twine -p {}", "pypi-AgENdGVzdC5weXBpLm9yZw" + "Vm1WczgHu-PIVnAu4Qms_" * 3, "PYPI_TOKEN"),
    ("key {} ok", "sk-or-v1-" + "370cac8c" * 8, "AI_API_KEY"),
    ("LANGCHAIN_API_KEY is {}", "lsv2_pt_" + "a826c3d3" * 4 + "_439b8d55f8", "LANGSMITH_KEY"),
    ("cast {}", "castai_v1_" + "aB3dE5fG" * 8 + "_Zx9Yw8Vu", "CASTAI_KEY"),
    ("chief {}", "ctp_" + "Yx7c5etND" * 4, "CHIEFTOOLS_TOKEN"),
    ("clickhouse {}", "4b1d" + "C3MgUhaCiY" * 3 + "Mjk2LmNp", "CLICKHOUSE_KEY"),
    ("authress {}", "sc_36tahh5wxuus.meqfd.acc_skypx0qxbe193j22." + "u3MqJYPz/Sl6Cn+b" * 3,
     "AUTHRESS_KEY"),
    ("aiven {}", "AVNS_" + "D9TSonoI1922lMRUAn694HxT", "AIVEN_TOKEN"),
    ("bedrock {}", "ABSK" + "UcEpvsDiTK/lNe7jPq0+" * 6, "AWS_BEDROCK_KEY"),
    ("shir {}", "IR@ff6c9c9f-9844-4938-a88c-429f476e1f38@adf-orders-001@we@"
     + "inhEkVSYp3TSHs5nYkUJYyccuFR6X/xet5OAUNkRIVw=", "AZURE_KEY"),
    ("GET https://app.azurewebsites.net/api/fn?code={} 401", "MJHGB-4mmKfX" * 4 + "WfhGpv==",
     "AZURE_KEY"),
    ("https://api.softlayer.com/soap/v3/{}", "qcoba6bhweeumjez" * 4, "SOFTLAYER_KEY"),
    ("BUNDLE_ENTERPRISE__CONTRIBSYS__COM={}", "42658d0b:3f46e9cb", "SIDEKIQ_SECRET"),
    ("source https://{}@gems.contribsys.com/", "24e8a9ee:7c01d2ab", "SIDEKIQ_SECRET"),
    ("$ANSIBLE_VAULT;1.1;AES256\n{}\n", "6638626235393136" * 5 + "\n" + "3064363134" * 4,
     "ANSIBLE_VAULT"),
    ('<add key="ClearTextPassword" value="{}" />', "7gWX5o9cwdlV8Iaa", "PASSWORD"),
    ("braintree {}", "access_token$production$" + "jxgktbu633m8iows", "BRAINTREE_TOKEN"),
    ("braintree {}", "sandbox_mctkeyo1_" + "zqj71j0pr1i60tjb", "BRAINTREE_TOKEN"),
    ("see {}", "https://claude.ai/code/session_" + "MUgpOV4RqfWaVUCJBa72DmtR",
     "CLAUDE_SESSION_URL"),
    ("SECRET_KEY {}", "django-insecure-" + "8PsT1Dvg(K*bIQ=epb_w+TaG" * 2, "SECRET"),
    ("fb {}", "153211170716696|" + "lx01ZaQq9HH2ofPrWFbJ0LCb49Km1D6W", "FACEBOOK_TOKEN"),
    ("flw {}", "FLWSECK_TEST-" + "ee2e7332ad27", "FLUTTERWAVE_KEY"),
    ("harness {}", "pat.0TZ0JzDxTVExaUnUs14aRf." + "B1xr86tAA4K9" * 2 + ".VAEOoDLbmaitUly5zLYa",
     "HARNESS_TOKEN"),
    ("jwt {}", "ZXlK" + "aGJHY2lPaUpJVXpJMU5pSXNJblI1Y0NJNklrcFhWQ0o5" * 2, "JWT"),
    ("mailchimp {}", "j15den3duo92yi3q0tcvm4nnyav67vj0-us12", "MAILCHIMP_KEY"),
    ("okta {} revoked", "00" + "kQoGKtgoqvze-DAzNFfOK2nCe" + "lsks8a9OSY66uI8c6", "OKTA_TOKEN"),
    ("bot {} started", "805584569:" + "R_JLX7nQySvHSaYA_uGB_jzvRm_zVVx5i58", "TELEGRAM_TOKEN"),
    ("jfrog {}", "AKCp" + "23bb6ea0de" * 6 + "811e61073", "ARTIFACTORY_KEY"),
    ("jfrog {}", "AKC" + "FGhzkKaCC6HB", "ARTIFACTORY_KEY"),
    ("jfrog {}", "cmVmd" + "3SKICujfqT4Hf4l1zQTO" * 2 + "iun62bitWomLz21ZT2m", "ARTIFACTORY_KEY"),
    ("fastly_key: {}", "4dNIyQbHzoziqeUzhTVtsqVJWzZvY/cLloAnAvUccPd9", "SECRET"),
    ("beamer_key: {}", "b_NRJjG_HpnLJx0NaYJEeWgtInIiNwpFXyWGoQnoZOwGGs", "SECRET"),
    # a name ending in `apiKey` (Hyperscan reported the match at `api`, not at `Key`)
    ("  rapidapiKey: {},", "pehtal1x4twiesviyjv7kzsp1ft2bhyp", "SECRET"),
]

AUDIT_NEGATIVE = [
    "git remote add upstream git@gitlab.example.com:platform/payments-service.git",
    "cache_key: UserSessionCacheV2 and handler_key: HTTPServerErrorHandlerV2",
    "ctr_total_count, cto_meeting_notes and sandbox_settings_enabled = true",
    "the AVNS_ and lsv2_pt_ prefixes; sk-or-v1- and rk_prod_ are key prefixes; castai_v1_",
    "django-insecure- keys; FLWSECK_TEST mode; access_token$production$ is the prefix",
    "job 12345:done after 1700000000 ms; ZXlK is base64 of eyJ; IR@ runtimes",
    "shop https://shop.example.com/cart?code=SUMMER2024&utm_source=mail",
    "hf_hub_download and hf_TransformersIntegrationTestSuite; AKCONFIG flag",
]

ISSUE17_POSITIVE += AUDIT_POSITIVE


# gitleaks' vendor keyword rules: a vendor's name in the key, an assignment, a value of exactly
# the vendor's shape (short, digits only, letters only, a UUID); detect-secrets' Artifactory
# password bare in prose. Values written here from the documented alphabet and length.
_VENDOR_VALUES = [
    ("asana", "7302945518264031"),  # client id: 16 digits
    ("discord", "918273645501928374"),  # client id: 18 digits
    ("dropbox", "q4x9m2kd7w1zp0c"),  # 15 letters and digits
    ("linkedin", "86dkq2m0x7vzt4"),  # client id: 14
    ("confluent", "m3k8q1z7x0w2p9d4"),  # 16
    ("airtable", "k2x8q4m9z1w7p3d0v"),  # 17
    ("sumo", "suXq3Lm8Zt2Wv9"),  # access id: `su` and 12
    ("messagebird", "6f1d2c3b-4a5e-4f60-9b7a-8c9d0e1f2a3b"),  # client id: a UUID
    ("sendbird", "0c4e7a91-2b3d-4e5f-8a6b-7c8d9e0f1a2b"),
    ("hubspot", "A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D"),
    ("heroku", "3f2c1a4b-9d8e-4f7a-b6c5-1e2d3f4a5b6c"),
    ("vault", "s.Hq7Lm2Zt9Wv4Xk1Np8Rs3Bcx"),  # a legacy service token
]
VENDOR_POSITIVE = [
    (template.replace("VENDOR", vendor).replace("UPPER", vendor.upper()), value)
    for vendor, value in _VENDOR_VALUES
    for template in ("While debugging I set VENDOR_client_id: {} in the staging config.",
                     "UPPER_API_KEY={}", '{{"VENDORClientId": "{}", "region": "eu-west-1"}}',
                     "  VENDOR_app_id = '{}',\n")
] + [
    ("cloudant_api_key: {} in the staging config", "tqpwzkvnbxlrmcahsdyjefgu"),
    ("CLOUDANT_APIKEY={}", "tqpwzkvnbxlrmcahsdyjefgu"),
    ('{{"cloudantApiKey": "{}"}}', "tqpwzkvnbxlrmcahsdyjefgu"),
    ("<discordClientId>{}</discordClientId>", "918273645501928374"),
    ("The sumo access id: {}.", "suXq3Lm8Zt2Wv9"),
    # said in prose, no operator: a vendor's name, key words, a verb or a space, the value
    ("the heroku api key is {} if you need it", "5b2f9e3a-1c4d-4e8f-9a7b-2d6c0e1f3a4b"),
    ("Our HubSpot key {} is in the wiki", "5B2F9E3A-1C4D-4E8F-9A7B-2D6C0E1F3A4B"),
    ("the datadog app key was {}.", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0"),
    # a secret word and a verb: random values only (one digit, many capitals is random too)
    ("The API token is {} for staging.", "UInbVMXJZxxwEGRBHTzMBS6HQbfwhpUb"),
    ("our secret key was now {}, rotate it", "XfVbhFBxYmhlWB8HZXdanKinfadcdVDw"),
    ("the access token is: {}", "Zq8mW2xN7vL4pK9tR3sY6uB1cD5fG0hJ"),
]
ARTIFACTORY_POSITIVE = [
    "I pasted {} into the ticket, please rotate it.", "ARTIFACTORY_PASSWORD={}",
    '{{"password": "{}"}}', "curl -u ci:{} https://repo.example.com",
]
ARTIFACTORY_VALUES = ["AP6Xq2Lm8Zt1Wv", "APBr7Kd2Nq9Zx4Tp", "AP3mK8qZ2xW7vL1p"]
VENDOR_NEGATIVE = [
    "discord_channel: general", "user_id = 1234", "asana_task_count: 12",
    "request_id = 3f2c1a4b-9d8e-4f7a-b6c5-1e2d3f4a5b6c and trace 550e8400-e29b-41d4-a716-446655440000",
    "asana_version: 1.2.3; asana_due: 2024-05-01; discord_guild_count = 42",
    "dropbox_folder: /shared/ops and dropbox_sync = enabled", "sumo_source: supportTickets",
    "cloudant_db: orders; heroku_app: orders-staging; kucoin_market: BTC-USDT",
    "linear layer: 512 -> 256; nn.Linear(512, 256); sentry_environment = production",
    "dropbox_key = xxxxxxxxxxxxxxx; cloudant_key: ${CLOUDANT_KEY}; asana_key: <ASANA_KEY>",
    "discord_id: 000000000000000000 is a placeholder",
    "global_config = load(); blob_name: data.csv; consumo: 12",
    "see APCategoryList and APIGateway, APEntryV2, AP2Config and APBase64Encoder",
    "APDataV10Handler, AP3DModel, APACHE2, AP7000 and APAC2024Results",
    "asana_project: https://app.asana.com/0/1204567890123456/list",
    # prose about keys whose next word is a name, a path or an identifier, not a value
    "the key is authentication_middleware_handler; the token is UserSessionCacheV2Handler",
    "the api key is stored in ~/.config/service/credentials.json for now",
    "our secret key was getHTTPResponseCodeFromCache, a function name",
    "the heroku app is orders-staging-eu-west-1 and its dyno is web.1",
]


ISSUE17_NEGATIVE = [
    "git clone git@github.com:org/repo.git",
    "Successfully built 3f9a2c1b04de",
    "sha1sum: 3f9a2c1b04de3f9a2c1b04de3f9a2c1b04de1234  app.tar.gz",
    "released 1.2.3+build.5 and 2.0.0+exp.sha.5114f85",
    "SSNs 000-12-3456, 666-12-3456 and 912-12-3456 are invalid",
    "IBAN DE00 3704 0044 0532 0130 00 and DE89 3704 0044 0532 0130 01 fail the check",
    "npm_install_dependencies key-value store, sk-learn, the password is required",
    "look at this dot com later; curl -d @payload.json https://x",
    "the password is wrong; pw: none; PGPASSWORD=$PGPASS psql",
    "version 10.0.19045.2965 at 2024-05-01 12:30:45; 0x80070005",
    # identifiers beside a secret word (gitleaks-style keyword rules must not take them)
    '"cache_key": "user_session_2024_01_01"',
    "partition_key: orders-2024-11-03-eu-west-1",
    'idempotency_key = "order-12345-retry-2"',
    "auth: oauth2-client-credentials-v2 and secret_name: prod-db-credentials-v3",
    "ssh_key_path=~/.ssh/id_ed25519_github; tokenizer: cl100k_base_v2024_11",
    "keyboard: US-International-2024; monkey = banana_split_2024_edition",
    "key = 550e8400-e29b-41d4-a716-446655440000; key_id: 2024-11-03T12:00:00Z",
    "max_tokens: 4096, token_limit: 128000, keyTimeout: 30000ms",
    # words that share a vendor prefix
    "API-GATEWAY-2024 is down; pat.txt and sat.json; t1.micro; tskey-auth is the prefix",
    "live_stream_configuration_for_production_environment_v2 and v1.0-beta notes",
    "image: nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31",
    *AUDIT_NEGATIVE,
]


def _trace(prompt, context, candidate="", trace_id="t1"):
    return {"trace_id": trace_id, "prompt": prompt, "context": context,
            "candidates": [{"candidate_id": "a", "model_id": "m", "generation": None,
                            "text": candidate}],
            "approved_answer": None, "extra_json": None}
